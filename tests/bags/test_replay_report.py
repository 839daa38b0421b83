"""Pieces of the replay report that need no graph: latency rows with units, prior-map places
in the ground truth (multi-session scoring)."""

from __future__ import annotations

import numpy as np

from lavpr_ros.bags.evaluate import GroundTruth
from lavpr_ros.bags.replay import with_places
from lavpr_ros.bags.report import markdown_table
from lavpr_ros.core.place_map import PlaceMap


def test_latency_rows_carry_units() -> None:
    cols = {
        "online": {"precision": 0.9, "latency_ms": {"decision": {"p50": 1.5, "p95": 3.0}}},
        "offline": {"precision": 0.9, "latency_ms": {"total": {"p50": 4.0, "p95": 9.0}}},
    }
    md = markdown_table(cols)
    assert "| latency decision p50 [ms] | 1.500 | - |" in md
    assert "| latency total p95 [ms] | - | 9.000 |" in md


def test_prior_map_places_are_scored_by_their_saved_poses() -> None:
    gt = GroundTruth(
        "sidecar",
        3.0,
        np.array([5000_000_000_000, 5001_000_000_000], dtype=np.int64),
        np.array([[0.0, 0, 0], [2.0, 0, 0]]),
        50_000_000,
        True,
    )
    prior = PlaceMap(dim=4, model_id="m")
    prior.add(np.ones(4), 1000.0, [10.0, 1.0, 0.0, 0, 0, 0, 1])
    prior.add(np.ones(4), 1001.0, None)  # no pose: stays unscored
    both = with_places(gt, prior)
    assert np.allclose(both.position(1000_000_000_000), [10.0, 1.0, 0.0])
    assert both.position(1001_000_000_000) is None
    assert np.allclose(both.position(5001_000_000_000), [2.0, 0, 0])
