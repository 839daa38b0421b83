"""Multi-session replay: a summer session saves its map; a winter session replayed with
``--prior-map`` starts from it, and its closures to the summer places are scored by the poses
saved with them. Both sessions write the PNGs of ``bag eval`` and a params.yaml naming the
encoder that ran."""

from __future__ import annotations

import json

import pytest
import yaml

from lavpr_ros.bags.writer import dataset_bag_frames, write_bag, write_sidecar
from lavpr_ros.cli.main import main as lavpr
from lavpr_ros.graph.description import default_config_file
from lavpr_ros.graph.online_run import derived_config

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PNGS = ("pr_curve.png", "trajectory.png", "matches.png")


def _bag(tmp_path, traverse: str, start_stamp: float):
    frames = dataset_bag_frames("nordland", [traverse], 1000, 60, start_stamp=start_stamp)
    bag = tmp_path / f"nordland_{traverse}"
    write_bag(frames, bag)
    write_sidecar(bag, frames, 3.0, {})
    return bag


def test_second_session_is_scored_against_the_prior_map(data_root, tmp_path) -> None:
    map_dir = tmp_path / "summer_map"
    cfg = derived_config(
        default_config_file(),
        {"place_map": {"map_path": str(map_dir), "save_on_shutdown": True}},
        tmp_path / "session1.yaml",
    )
    out1 = tmp_path / "s1"
    bag1 = _bag(tmp_path, "summer", 1000.0)
    args = ["bag", "replay", str(bag1), "--rate-factor", "10", "--quiet", "--out", str(out1)]
    assert lavpr([*args, "--config", str(cfg)]) == 0
    assert (map_dir / "manifest.yaml").is_file()
    for run in ("online", "offline"):
        assert all((out1 / run / png).stat().st_size > 0 for png in PNGS), run
    params = yaml.safe_load((out1 / "params.yaml").read_text())
    assert params["/**/vpr_encoder"]["ros__parameters"]["encoder"] == "patchnorm"

    out2 = tmp_path / "s2"
    bag2 = _bag(tmp_path, "winter", 5000.0)  # later stamps: a later session
    args = ["bag", "replay", str(bag2), "--rate-factor", "10", "--quiet", "--out", str(out2)]
    assert lavpr([*args, "--prior-map", str(map_dir)]) == 0
    on = json.loads((out2 / "metrics.json").read_text())["online"]
    assert on["prior_map_places"] > 20
    assert on["closures_to_prior_map"] > 10, on
    assert on["correct"] >= 0.8 * on["loop_closures"], on  # scored by the saved summer poses
    assert all((out2 / "online" / png).stat().st_size > 0 for png in PNGS)
