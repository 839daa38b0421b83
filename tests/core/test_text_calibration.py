"""`lavpr text calibrate` on the real Corridor descriptions and the shipped command set: the
chosen thresholds are the node's defaults and they cut false goals on out-of-map commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lavpr_ros.cli.main import main
from lavpr_ros.nodes import text_nav

REPO = Path(__file__).resolve().parents[2]
COMMANDS = REPO / "evaluation" / "commands" / "corridor_commands.csv"


def test_command_set_is_large_enough() -> None:
    with COMMANDS.open() as fh:
        kinds = [r["kind"] for r in csv.DictReader(fh)]
    assert kinds.count("out_of_map") >= 50 and kinds.count("in_map") >= 30


def test_calibrate_reports_before_after_and_matches_the_defaults(
    tmp_path, text_model, data_root
) -> None:
    assert main(["text", "calibrate", "--out", str(tmp_path), "--text-model", str(text_model)]) == 0
    res = json.loads((tmp_path / "text_calibration.json").read_text())
    assert (tmp_path / "text_calibration.png").stat().st_size > 0
    before, after = res["before"], res["after"]
    assert after["commands"]["false_goal_rate"] <= res["max_false_rate"]
    assert after["commands"]["false_goal_rate"] < before["commands"]["false_goal_rate"]
    assert "kitchen" in before["false_goals"] and "kitchen" not in after["false_goals"]
    assert after["commands"]["n_out_of_map"] >= 50
    assert after["held_out"]["n_in_map"] == 111  # the query descriptions, scored on the GT
    defaults = {p.name: p.default for p in text_nav.PARAMS}
    assert after["policy"] == {
        "min_score": pytest.approx(defaults["min_score"]),
        "min_margin": pytest.approx(defaults["min_margin"]),
    }, "re-run `lavpr text calibrate` and update core/text_goal.py defaults + config"


def test_calibrate_refuses_a_bad_command_file(tmp_path, text_model, data_root) -> None:
    bad = tmp_path / "c.csv"
    bad.write_text("command,kind,places\nthe lockers,in_map,500-510\n")
    rc = main(["text", "calibrate", "--commands", str(bad), "--out", str(tmp_path)])
    assert rc == 2


def test_calibrate_another_map_by_folders_without_held_out(tmp_path, text_model, data_root) -> None:
    c = data_root / "corridor"
    args = ["text", "calibrate", "--ref", str(c / "ref"), "--query", str(c / "query")]
    args += ["--ground-truth", str(c / "ground_truth.json"), "--query-descriptions", ""]
    assert main([*args, "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "text_calibration.json").read_text())
    assert "held_out" not in res["after"] and res["after"]["commands"]["n_in_map"] >= 30
    assert main(["text", "calibrate", "--ref", str(c / "ref"), "--out", str(tmp_path)]) == 2
