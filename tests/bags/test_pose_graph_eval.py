"""Pose-graph evaluation on a short real Nordland segment (summer then winter), via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lavpr_ros.bags.pose_graph_eval import DriftModel, drift
from lavpr_ros.bags.writer import write_bag, write_sidecar
from lavpr_ros.cli.main import main as lavpr


def test_drift_model_is_seeded_and_grows() -> None:
    truth = np.array([[2.0 * i, 0, 0, 0, 0, 0, 1] for i in range(100)])
    a, b = drift(truth, DriftModel(seed=3)), drift(truth, DriftModel(seed=3))
    np.testing.assert_array_equal(a, b)
    err = np.linalg.norm(a[:, :3] - truth[:, :3], axis=1)
    assert err[0] == 0 and err[-1] > err[10] > 0
    assert abs(np.linalg.norm(a[1, :3] - a[0, :3]) - 2.0 * 1.03) < 1e-9  # scale error


def test_posegraph_eval_corrects_the_drifted_demo_segment(
    nordland_frames, tmp_path: Path, capsys
) -> None:
    bag = tmp_path / "nordland"
    write_bag(nordland_frames, bag)
    write_sidecar(bag, nordland_frames, 3.0, {})
    out = tmp_path / "report"
    args = ["posegraph", "eval", str(bag), "--out", str(out), "--false-closures", "3"]
    assert lavpr([*args, "--scale-error", "0.05", "--heading-rw", "0.01"]) == 0
    printed = capsys.readouterr().out
    assert "drifted" in printed and "ATE rmse" in printed
    r = json.loads((out / "pose_graph_eval.json").read_text())
    assert r["keyframes"] == 120 and r["closures"] > 20
    assert r["false_closures_injected"] == 3
    runs = r["runs"]
    # The summer traverse has no loop of its own: only the winter half can be corrected.
    assert runs["pose_graph"]["ate_rmse_m"] < 0.7 * runs["drifted"]["ate_rmse_m"], runs
    assert runs["pose_graph_false_closures"]["ate_rmse_m"] < 1.2 * runs["pose_graph"]["ate_rmse_m"]
    assert r["graph_false_closures"]["loops_rejected"] >= 3
    for png in ("pose_graph_trajectories.png", "pose_graph_error.png"):
        assert (out / png).stat().st_size > 10_000


@pytest.mark.ros
@pytest.mark.slow
def test_bag_replay_with_pose_graph_corrects_online(nordland_frames, tmp_path: Path) -> None:
    """The drifted odometry through the real graph (vpr_encoder, place_map, pose_graph)."""
    bag = tmp_path / "nordland"
    write_bag(nordland_frames, bag)
    write_sidecar(bag, nordland_frames, 3.0, {})
    out = tmp_path / "replay"
    args = ["bag", "replay", str(bag), "--rate-factor", "10", "--out", str(out), "--quiet"]
    args += ["--encoder", "patchnorm"]  # keeps up at x10 on 2 shared cores (mechanics test)
    drift_args = ["--scale-error", "0.05", "--heading-rw", "0.01"]
    assert lavpr([*args, "--no-offline", "--pose-graph", *drift_args]) == 0
    pg = json.loads((out / "metrics.json").read_text())["pose_graph"]
    assert pg["keyframes"] > 100, pg
    assert pg["pose_graph"]["ate_rmse_m"] < 0.7 * pg["drifted"]["ate_rmse_m"], pg
    assert (out / "pose_graph_online.json").is_file()
    assert (out / "pose_graph_trajectories.png").stat().st_size > 10_000


def test_posegraph_bench_prints_its_numbers(capsys) -> None:
    assert lavpr(["posegraph", "bench", "--keyframes", "200", "--loop-every", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["keyframes"] == 200 and out["loops"] == 20
    assert (
        0 < out["ms_per_keyframe_p50"] <= out["ms_per_keyframe_p95"] <= out["ms_per_keyframe_max"]
    )
