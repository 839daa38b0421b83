"""`lavpr bag eval --distractor-map`: the bag's route appended after a saved map of other places
(the city-scale check of docs/scale.md) - ids shift, matches to distractors count as false, and a
map that cannot hold the route before the bag is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lavpr_ros.bags.evaluate import (
    Decision,
    GroundTruth,
    config_encoder,
    evaluate_bag,
    score_decisions,
)
from lavpr_ros.bags.writer import write_bag, write_sidecar
from lavpr_ros.core.datasets import nordland
from lavpr_ros.core.encoders import create_encoder
from lavpr_ros.core.images import load_image
from lavpr_ros.core.place_map import MapMismatchError, PlaceMap

QUIET = {"progress": False, "log": lambda s: None}


@pytest.fixture(scope="module")
def bag(nordland_frames, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bag") / "nordland"
    write_bag(nordland_frames, path)
    write_sidecar(path, nordland_frames, 3.0, {})
    return path


def _other_places(tmp: Path, stamps: np.ndarray, model: str | None = None) -> Path:
    """Nordland summer frames 2000.. (far from the bag's 1000..1059), encoded as the config's
    encoder encodes them, saved as a map."""
    enc = create_encoder(config_encoder(None))
    ds = nordland()
    x = enc.encode([load_image(p) for p in ds.ref_paths[2000 : 2000 + len(stamps)]])
    m = PlaceMap(enc.dim, model or enc.model_id)
    m.add_batch(x, stamps)
    m.save(tmp / "distractors")
    return tmp / "distractors"


def test_route_embedded_after_distractors_scores_like_alone(bag, tmp_path) -> None:
    alone = evaluate_bag(bag, **QUIET).metrics
    path = _other_places(tmp_path, np.arange(80) / 10.0)  # stamped 0..8 s, the bag from 1000 s
    res = evaluate_bag(bag, distractor_map=path, **QUIET)
    m = res.metrics
    assert m["distractor_places"] == 80 and m["keyframes"] == alone["keyframes"]
    assert m["positive_queries"] == alone["positive_queries"]
    # The bag's places come after the distractors: ids shift by 80, correct ones are scored so.
    accepted = [d for d in res.decisions if d.accepted]
    assert accepted and all(d.query_id >= 80 for d in res.decisions)
    assert all(d.correct is False for d in accepted if d.match_id < 80)
    assert abs(m["recall"] - alone["recall"]) <= 0.05, (m["recall"], alone["recall"])
    assert m["precision"] >= alone["precision"] - 0.05


def test_a_match_to_a_distractor_is_false() -> None:
    gt = GroundTruth("t", 3.0, np.array([0, 10]), np.zeros((2, 3)), 10, True)
    d = Decision(10, 0, 7, 3, 0.9, 1.0, 1.0, True, "accepted")  # same position, but a distractor
    m, _ = score_decisions([d], gt, [{3}], True, with_candidates=False, distractors=5)
    assert d.correct is False and m["false"] == 1 and m["correct"] == 0


def test_distractors_stamped_during_the_bag_or_of_another_model_are_refused(bag, tmp_path):
    late = _other_places(tmp_path / "late", np.arange(5) + 1500.0)
    with pytest.raises(ValueError, match="stamped before the bag"):
        evaluate_bag(bag, distractor_map=late, **QUIET)
    other = _other_places(tmp_path / "model", np.arange(5) * 1.0, model="another-model")
    with pytest.raises(MapMismatchError, match="another-model"):
        evaluate_bag(bag, distractor_map=other, **QUIET)
