"""Pose graph mechanics on a synthetic drifting square loop (real GTSAM, no ROS)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lavpr_ros.core.pose_graph import (
    OPTICAL_IN_BASE,
    PoseGraph,
    PoseGraphConfig,
    PoseGraphError,
    from_pose3,
    relative_errors,
    to_pose3,
)


def _yaw_pose(x: float, y: float, yaw: float) -> list[float]:
    return [x, y, 0.0, 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]


def _square(side: int = 15, extra: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """True poses of a lap of a square (1 m steps) plus ``extra`` steps again along its first
    side, and a drifted odometry of it (3 % scale error, 0.01 rad heading bias per step, seeded
    noise). Keyframe 4 * side + k is at the place of keyframe k."""
    rng = np.random.default_rng(7)
    truth, odom = [], []
    x = y = h = 0.0
    ox = oy = oh = 0.0
    for lap_side in range(5):
        for s in range(side if lap_side < 4 else extra):
            truth.append(_yaw_pose(x, y, h))
            odom.append(_yaw_pose(ox, oy, oh))
            turn = math.pi / 2 if s == side - 1 else 0.0
            x, y = x + math.cos(h), y + math.sin(h)
            ox, oy = ox + 1.03 * math.cos(oh), oy + 1.03 * math.sin(oh)
            h += turn
            oh += turn + 0.01 + rng.normal(0, 0.003)
    return np.array(truth), np.array(odom)


def _graph(odom: np.ndarray, **cfg: object) -> PoseGraph:
    g = PoseGraph(PoseGraphConfig(**cfg))  # type: ignore[arg-type]
    for i, p in enumerate(odom):
        g.add_keyframe(i, float(i), p)
    return g


def _rmse(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(e**2)))


def test_same_place_closures_remove_the_drift_of_a_loop() -> None:
    truth, odom = _square()
    g = _graph(odom)
    before = _rmse(relative_errors(g.poses(), truth))
    for k in range(6):
        g.add_loop(60 + k, k)
    after = _rmse(relative_errors(g.poses(), truth))
    assert before > 1.0
    assert after < 0.7 * before  # a position-only closure cannot undo all heading drift
    # The correction maps the newest odometry pose onto the optimised keyframe.
    np.testing.assert_allclose(g.correct(odom[-1])[:3], g.poses()[-1][:3], atol=1e-6)
    assert g.stats()["loops_same_place"] == 6


def _close(g: PoseGraph) -> PoseGraph:
    for k in range(6):
        g.add_loop(60 + k, k)
    return g


def test_one_false_closure_is_down_weighted() -> None:
    truth, odom = _square()
    clean, noisy = _close(_graph(odom)), _close(_graph(odom))
    noisy.add_loop(63, 30)  # keyframe 30 is on the far side of the square
    e_clean = _rmse(relative_errors(clean.poses(), truth))
    e_noisy = _rmse(relative_errors(noisy.poses(), truth))
    assert e_noisy < 1.2 * e_clean
    weights = noisy.loop_weights()
    assert min(weights[:6]) > 0.5 and weights[6] < 0.1
    assert noisy.stats()["loops_rejected"] == 1
    # Without a robust kernel the same false closure pulls the two keyframes together.
    plain = _close(_graph(odom, robust_kernel="none"))
    plain.add_loop(63, 30)

    def gap(g: PoseGraph) -> float:
        return float(np.linalg.norm(g.pose(63)[:3] - g.pose(30)[:3]))

    assert gap(plain) < gap(noisy) - 1.0
    assert gap(noisy) > 0.9 * gap(clean)


def test_partial_relinearization_reaches_the_full_check_result() -> None:
    """The partial check (the default, it bounds the time per closure) may skip deep variables
    that moved less than the threshold; the optimised loop must match the full check's."""
    assert PoseGraphConfig().partial_relinearization
    truth, odom = _square()
    part = _close(_graph(odom))
    full = _close(_graph(odom, partial_relinearization=False))
    np.testing.assert_allclose(part.poses()[:, :3], full.poses()[:, :3], atol=0.05)
    e_part = _rmse(relative_errors(part.poses(), truth))
    e_full = _rmse(relative_errors(full.poses(), truth))
    assert e_part < 1.05 * e_full + 0.01
    assert part.loop_weights() == pytest.approx(full.loop_weights(), abs=0.05)


def _optical(t_base: object) -> list[float]:
    """A base-frame relative pose expressed between the camera optical frames."""
    b = to_pose3(OPTICAL_IN_BASE)
    return from_pose3(b.inverse().compose(to_pose3(t_base)).compose(b)).tolist()


def test_metric_and_direction_closures_use_the_transform() -> None:
    truth, odom = _square()
    # Keyframe 61 (the place of keyframe 1) seen from keyframe 0: 1 m ahead.
    rel = to_pose3(truth[0]).between(to_pose3(truth[1]))
    t_opt = _optical(from_pose3(rel))
    cov = np.diag([0.25, 0.25, 0.25, 0.04, 0.04, 0.04]).reshape(-1)
    metric = _close(_graph(odom))
    rec = metric.add_loop(61, 0, transform=t_opt, covariance=cov, metric_scale=True)
    assert rec.kind == "metric"
    np.testing.assert_allclose(rec.measurement[:3], [1, 0, 0], atol=1e-9)  # base frame
    assert metric.loop_weights()[-1] > 0.2  # consistent with the corrected graph
    unit = np.asarray(t_opt, dtype=float)
    direction = _close(_graph(odom))
    rec = direction.add_loop(62, 0, transform=unit.tolist(), covariance=cov, metric_scale=False)
    assert rec.kind == "direction"
    assert direction.loop_weights()[-1] > 0.2
    # A bearing pointing backwards contradicts the graph and is down-weighted.
    back = unit.copy()
    back[:3] *= -1
    direction.add_loop(63, 0, transform=back.tolist(), covariance=cov, metric_scale=False)
    assert direction.loop_weights()[-1] < 0.1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"query": 5, "match": 999}, "unknown"),
        ({"query": 5, "match": 5}, "itself"),
        ({"transform": [0, 0, 1, 0, 0, 0, 1], "covariance": [math.nan] * 36}, "NaN"),
        ({"transform": [0, 0, 1, 0, 0, 0, 1], "covariance": [0.0] * 35 + [1.0]}, "degenerate"),
        ({"transform": [0, 0, 1, 0, 0, 0, 0]}, "quaternion"),
        ({"transform": [0, 0, 1, 0, 0, 0, 1], "metric_scale": True}, "without a covariance"),
        ({"transform": [0, 0, 0, 0, 0, 0, 1]}, "zero translation"),
    ],
)
def test_bad_loop_closures_are_rejected_with_a_reason(kwargs: dict, reason: str) -> None:
    _, odom = _square()
    g = _graph(odom[:10])
    args = {"query": 9, "match": 0, **kwargs}
    with pytest.raises(PoseGraphError, match=reason):
        g.add_loop(**args)
    assert g.loops == [] and len(g) == 10  # nothing changed
    g.add_loop(9, 0)  # and the graph still works


def test_closure_before_odometry_and_bad_keyframes_are_rejected() -> None:
    g = PoseGraph()
    with pytest.raises(PoseGraphError, match="before any odometry"):
        g.add_loop(1, 0)
    g.add_keyframe(0, 1.0, _yaw_pose(0, 0, 0))
    assert g.add_keyframe(0, 1.0, _yaw_pose(0, 0, 0)) is False  # re-published keyframe
    with pytest.raises(PoseGraphError, match="time order"):
        g.add_keyframe(1, 0.5, _yaw_pose(1, 0, 0))
    with pytest.raises(PoseGraphError, match="non-finite"):
        g.add_keyframe(2, 2.0, [math.nan, 0, 0, 0, 0, 0, 1])
    assert len(g) == 1
    with pytest.raises(ValueError, match="robust_kernel"):
        PoseGraphConfig(robust_kernel="l1")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    _, odom = _square()
    g = _graph(odom, same_place_sigma_m=1.5)
    g.add_loop(len(odom) - 1, 0)
    path = g.save(tmp_path / "map.pose_graph.json")
    assert not list(tmp_path.glob("*.part"))
    h = PoseGraph.load(path)
    assert h.config == g.config and h.keys == g.keys and len(h.loops) == 1
    np.testing.assert_allclose(h.poses(), g.poses(), atol=1e-2)
    # The loaded graph keeps growing.
    h.add_keyframe(10_000, 1e6, odom[-1])
    assert len(h) == len(g) + 1
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(PoseGraphError, match="not a"):
        PoseGraph.load(tmp_path / "bad.json")


def test_a_new_session_is_anchored_by_closures_to_the_loaded_graph(tmp_path: Path) -> None:
    truth, odom = _square()
    g = _close(_graph(odom[:66]))
    g = PoseGraph.load(g.save(tmp_path / "g.json"))
    g.start_session()
    # Session 2 drives the first side again; its odometry restarts at (0, 0) but it truly
    # starts at keyframe 5's place, and its stamps restart too.
    offset = truth[5, :3]
    for k in range(8):
        p = np.array(_yaw_pose(float(k), 0.0, 0.0))
        g.add_keyframe(1000 + k, float(k), p)
        if k % 2 == 0:
            g.add_loop(1000 + k, 5 + k)
    assert g.session_starts == [0, 66]
    est = np.array([g.pose(1000 + k) for k in range(8)])
    want = offset + np.array([[k, 0, 0] for k in range(8)])
    old = np.array([g.pose(5 + k) for k in range(8)])  # where the graph has those places
    assert np.abs(est[:, :3] - old[:, :3]).max() < 1.0
    assert np.linalg.norm(est[0, :3] - want[0]) < 1.5
    h = PoseGraph.load(g.save(tmp_path / "g2.json"))
    assert h.session_starts == [0, 66]
    np.testing.assert_allclose(h.poses(), g.poses(), atol=1e-2)
