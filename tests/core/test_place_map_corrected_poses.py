"""PlaceMap.correct_poses: the pose graph's optimised keyframes replace place poses by stamp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lavpr_ros.core.place_map import PlaceMap


def _map() -> PlaceMap:
    m = PlaceMap(dim=4, model_id="m")
    for i in range(5):
        d = np.eye(4, dtype=np.float32)[i % 4]
        m.add(d, stamp=10.0 + i, pose=[float(i), 0, 0, 0, 0, 0, 1] if i != 3 else None)
    return m


def test_poses_are_replaced_by_stamp_within_tolerance() -> None:
    m = _map()
    new = [[i + 0.5, 1.0, 0, 0, 0, 0, 1] for i in range(3)]
    # 10.0 and 11.0002 match, 20.0 matches no place.
    assert m.correct_poses([10.0, 11.0002, 20.0], new) == 2
    p0, p1, p2 = m.get(0).pose, m.get(1).pose, m.get(2).pose
    assert p0 is not None and p1 is not None and p2 is not None
    np.testing.assert_allclose(p0[:2], [0.5, 1.0])
    np.testing.assert_allclose(p1[:2], [1.5, 1.0])
    np.testing.assert_allclose(p2[:2], [2.0, 0.0])  # untouched
    assert m.correct_poses([13.0], [[3, 3, 0, 0, 0, 0, 1]]) == 1  # a place without pose gets one
    assert m.get(3).pose is not None


def test_bad_corrected_poses_change_nothing() -> None:
    m = _map()
    with pytest.raises(ValueError, match="non-finite"):
        m.correct_poses([10.0, 11.0], [[9, 9, 0, 0, 0, 0, 1], [math.nan, 0, 0, 0, 0, 0, 1]])
    p0 = m.get(0).pose
    assert p0 is not None and p0[0] == 0.0
    with pytest.raises(ValueError, match="2 stamps but 1 poses"):
        m.correct_poses([10.0, 11.0], [[9, 9, 0, 0, 0, 0, 1]])
    assert PlaceMap(dim=4, model_id="m").correct_poses([1.0], [[0, 0, 0, 0, 0, 0, 1]]) == 0
