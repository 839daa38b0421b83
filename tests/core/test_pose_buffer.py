"""Pose pairing by timestamp: interpolation, tolerance, bad poses, out-of-order stamps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lavpr_ros.core.pose_buffer import PoseBuffer


def _pose(x: float, yaw: float = 0.0) -> np.ndarray:
    return np.array([x, 0.0, 0.0, 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])


def test_interpolates_between_bracketing_poses() -> None:
    buf = PoseBuffer()
    buf.add(10.0, _pose(0.0, 0.0))
    buf.add(10.2, _pose(2.0, math.pi / 2))
    p = buf.lookup(10.1, tolerance_s=0.15)
    assert p is not None
    assert p[0] == pytest.approx(1.0)
    yaw = 2 * math.atan2(p[5], p[6])
    assert yaw == pytest.approx(math.pi / 4, abs=1e-6)
    assert np.linalg.norm(p[3:]) == pytest.approx(1.0)


def test_nearest_within_tolerance_else_none() -> None:
    buf = PoseBuffer()
    assert buf.lookup(1.0, 0.1) is None
    buf.add(10.0, _pose(1.0))
    assert buf.lookup(10.05, 0.1)[0] == pytest.approx(1.0)
    assert buf.lookup(10.5, 0.1) is None
    buf.add(11.0, _pose(5.0))
    # Bracketed but the gap is larger than the tolerance: nearest only if close enough.
    assert buf.lookup(10.5, 0.1) is None
    assert buf.lookup(10.95, 0.1)[0] == pytest.approx(5.0)


def test_out_of_order_and_duplicate_stamps() -> None:
    buf = PoseBuffer()
    buf.add(2.0, _pose(2.0))
    buf.add(1.0, _pose(1.0))
    buf.add(2.0, _pose(7.0))  # duplicate stamp: newest wins
    assert len(buf) == 2
    assert buf.lookup(1.5, 1.0)[0] == pytest.approx(4.0)


@pytest.mark.parametrize(
    "pose",
    [
        [math.nan, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, math.inf],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0],
    ],
)
def test_bad_poses_are_refused(pose: list[float]) -> None:
    buf = PoseBuffer()
    with pytest.raises(ValueError):
        buf.add(1.0, np.array(pose, dtype=float))
    assert len(buf) == 0
    with pytest.raises(ValueError):
        buf.add(math.nan, _pose(0.0))


def test_old_poses_expire() -> None:
    buf = PoseBuffer(max_age_s=5.0)
    for t in range(20):
        buf.add(float(t), _pose(float(t)))
    assert len(buf) == 6
    assert buf.lookup(3.0, 0.1) is None


def test_poses_a_user_still_needs_outlive_max_age() -> None:
    buf = PoseBuffer(max_age_s=5.0)
    buf.keep_from = 3.5
    for t in range(20):
        buf.add(float(t), _pose(float(t)))
    assert buf.lookup(3.5, 1.0)[0] == pytest.approx(3.5)  # 3.0 kept: it brackets 3.5
    assert buf.lookup(2.0, 0.1) is None
    buf.keep_from = None
    buf.add(20.0, _pose(20.0))
    assert len(buf) == 6  # 15..20: age pruning again
    small = PoseBuffer(max_age_s=5.0, max_len=8)
    small.keep_from = 0.0
    for t in range(20):
        small.add(float(t), _pose(float(t)))
    assert len(small) == 8  # max_len bounds memory whatever keep_from says
