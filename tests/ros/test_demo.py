"""The main job (`lavpr demo`, what `make demo` runs) works end to end on a short segment."""

from __future__ import annotations

import json

import pytest

from lavpr_ros.cli.main import main

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_builds_bag_replays_and_reports(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert (
        main(["demo", "--start", "1000", "--count", "80", "--rate-factor", "20", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "loop closure" in printed and "correct" in printed
    report = json.loads((out / "metrics.json").read_text())
    online, offline = report["online"], report["offline"]
    assert online["images_published"] == 160 and online["loop_closures"] > 10
    assert abs(online["precision"] - offline["precision"]) <= 0.05
    assert abs(online["recall"] - offline["recall"]) <= 0.05
    for name in ("pr_curve.png", "trajectory.png", "matches.png"):
        assert (out / "offline" / name).stat().st_size > 1000
    # A second run reuses the bag.
    assert (out / "nordland_1000_80" / "metadata.yaml").is_file()
