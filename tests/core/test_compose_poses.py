"""compose_poses: a pose re-expressed in another frame (the math text_nav's tf2 path uses)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lavpr_ros.core.poses import compose_poses


def _yaw(x: float, y: float, yaw: float) -> np.ndarray:
    return np.array([x, y, 0.0, 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])


def test_compose_matches_planar_rigid_transform() -> None:
    # odom's pose in map: 10 m along x, turned 90 degrees. A point 2 m ahead in odom (x) is
    # 2 m along map's y from (10, 0).
    out = compose_poses(_yaw(10.0, 0.0, math.pi / 2), _yaw(2.0, 0.0, 0.3))
    np.testing.assert_allclose(out, _yaw(10.0, 2.0, math.pi / 2 + 0.3), atol=1e-12)


def test_compose_with_identity_and_inverse() -> None:
    pose = np.array([1.0, -2.0, 0.5, 0.1, 0.2, 0.3, 0.9])
    pose[3:] /= np.linalg.norm(pose[3:])
    np.testing.assert_allclose(compose_poses(_yaw(0, 0, 0), pose), pose, atol=1e-12)
    t = _yaw(3.0, 4.0, 1.0)
    inv = np.array(
        [
            *(
                -np.array([3.0, 4.0])
                @ np.array([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]])
            ),
            0.0,
            0.0,
            0.0,
            -math.sin(0.5),
            math.cos(0.5),
        ]
    )
    np.testing.assert_allclose(compose_poses(inv, t), _yaw(0, 0, 0), atol=1e-12)
    with pytest.raises(ValueError):
        compose_poses([0, 0, 0, 0, 0, 0, 0], pose)
