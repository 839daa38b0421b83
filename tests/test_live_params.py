"""Live parameters without DDS: the set check of nodes/params.py with the nodes' real builders,
the detector taking new thresholds, and which parameters are live or read-only."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lavpr_ros.core.loop_closure import LoopClosureConfig, LoopClosureDetector
from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.graph.config import dataclass_from_params
from lavpr_ros.nodes import geo_localizer, place_map, pose_graph, text_nav, vpr_encoder
from lavpr_ros.nodes.params import check_update, prepare_periods

LC = "loop_closure."


def _lc_prepare(applied: list[LoopClosureConfig]):
    """place_map's loop-closure step: build the config from the new values, commit installs."""

    def prepare(new, changed):
        config = dataclass_from_params(LoopClosureConfig, new, LC)
        return lambda: applied.append(config)

    return prepare


def _place_map_values() -> dict:
    return {p.name: p.default for p in place_map.all_params()}


def _live(params) -> set[str]:
    return {p.name for p in params if p.live}


def test_valid_change_gives_a_commit_that_has_not_run_yet() -> None:
    values, applied = _place_map_values(), []
    reason, commit = check_update(
        values, {LC + "min_score": 0.7}, _live(place_map.all_params()), _lc_prepare(applied)
    )
    assert reason == "" and commit is not None
    assert not applied and values[LC + "min_score"] == 0.0  # nothing changed before commit
    commit()
    assert applied[0].min_score == 0.7 and applied[0].min_confidence == 0.5


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        (LC + "top_k", 0, ["loop_closure.top_k=0", "top_k must be >= 1"]),
        (LC + "min_score", math.nan, ["loop_closure.min_score", "NaN"]),
        (LC + "keyframe_min_distance_m", -1.0, ["keyframe_min_distance_m", ">= 0"]),
        (LC + "exclude_recent_s", -5.0, ["exclude_recent_s", "temporal exclusion"]),
        (LC + "sequence_length", 3, ["loop_closure.sequence_length is read-only"]),
        ("map_path", "/tmp/x", ["map_path is read-only"]),
    ],
)
def test_invalid_or_read_only_change_is_refused_with_the_reason(name, value, words) -> None:
    values, applied = _place_map_values(), []
    before = dict(values)
    reason, commit = check_update(
        values, {name: value}, _live(place_map.all_params()), _lc_prepare(applied)
    )
    assert commit is None and not applied and values == before
    for w in words:
        assert w in reason, reason


def test_text_nav_goal_policy_refuses_out_of_range_values() -> None:
    p = {q.name: q.default for q in text_nav.PARAMS}
    assert text_nav.goal_policy(p).min_score == p["min_score"]
    for name, value, word in [
        ("ambiguity_radius_m", -1.0, "ambiguity_radius_m"),
        ("ambiguity_radius_m", math.inf, "ambiguity_radius_m"),
        ("min_score", 1.5, "min_score"),
        ("min_margin", -0.1, "min_margin"),
    ]:
        with pytest.raises(ValueError, match=word):
            text_nav.goal_policy({**p, name: value})


def test_period_prepare_refuses_zero_and_applies_a_positive_period() -> None:
    got: list[float] = []
    prep = prepare_periods({"diagnostics_period_s": (got.append, False)})
    values = {"diagnostics_period_s": 1.0}
    reason, commit = check_update(values, {"diagnostics_period_s": 0.0}, values, prep)
    assert commit is None and "diagnostics_period_s" in reason and "> 0" in reason
    reason, commit = check_update(values, {"diagnostics_period_s": 0.25}, values, prep)
    assert commit is not None
    commit()
    assert got == [0.25]


def _unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    d = rng.standard_normal((n, dim)).astype(np.float32)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_detector_takes_new_thresholds_and_refuses_structural_changes() -> None:
    rng = np.random.default_rng(0)
    config = LoopClosureConfig(
        sequence_length=0,
        exclude_recent_s=0.0,
        exclude_recent_n=0,
        min_score=0.5,
        keyframe_min_distance_m=0.0,
        keyframe_min_rotation_rad=0.0,
        keyframe_max_interval_s=0.0,
    )
    det = LoopClosureDetector(PlaceMap(32, "m"), config)
    places = _unit(rng, 5)
    for i, d in enumerate(places):
        det.process(d, float(i))

    def revisit(t: float) -> bool:
        noisy = places[2] + 0.15 * _unit(rng, 1)[0]
        res = det.process(noisy / np.linalg.norm(noisy), t)
        assert res.decision is not None and res.decision.match_id == 2
        return res.decision.accepted

    assert revisit(10.0)
    det.update_config(dataclasses.replace(config, min_score=0.999))
    assert not revisit(11.0)
    with pytest.raises(ValueError, match="sequence_length"):
        det.update_config(dataclasses.replace(config, sequence_length=5, min_score=0.0))
    assert det.config.min_score == 0.999  # the refused update changed nothing
    det.update_config(dataclasses.replace(config, top_k=2, keyframe_min_interval_s=5.0))
    assert det.keyframes.min_interval_s == 5.0
    assert not det.process(places[0], 12.0).is_keyframe  # 1 s after the last keyframe
    assert len(det.process(places[1], 20.0).candidates) == 2


def test_thresholds_are_live_and_structure_is_read_only() -> None:
    pm = _live(place_map.all_params())
    for name in [
        "min_score",
        "min_sequence_score",
        "min_confidence",
        "max_pose_distance_m",
        "top_k",
        "exclude_recent_s",
        "keyframe_min_distance_m",
    ]:
        assert LC + name in pm
    assert "verification.min_inliers" in pm and "diagnostics_period_s" in pm
    for name in [
        "map_path",
        "index_type",
        "text_model",
        "reliable_input",
        "pose_source",
        LC + "sequence_length",
        LC + "mode",
        "verification.feature_type",
        "verification.enabled",
    ]:
        assert name not in pm
    tn = _live(text_nav.PARAMS)
    assert {"min_score", "min_margin", "ambiguity_radius_m", "top_k"} <= tn
    assert not {"text_model", "providers", "mode"} & tn
    enc = _live(vpr_encoder.PARAMS)
    assert enc == {"diagnostics_period_s"}
    assert _live(geo_localizer.PARAMS) == {"diagnostics_period_s"}
    assert _live(pose_graph.PARAMS) == {"diagnostics_period_s"}
