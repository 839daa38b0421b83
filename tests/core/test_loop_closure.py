"""LoopClosureDetector and KeyframeSelector on synthetic trajectories with a real PlaceMap."""

from __future__ import annotations

import numpy as np
import pytest

from lavpr_ros.core.loop_closure import (
    KeyframeSelector,
    LoopClosureConfig,
    LoopClosureDetector,
)
from lavpr_ros.core.place_map import PlaceMap

DIM = 32


def _pose(x: float, y: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    return np.array([x, y, 0.0, 0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def _places(n: int, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _noisy(d: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    x = d + rng.normal(0, sigma, size=d.shape).astype(np.float32)
    return x / np.linalg.norm(x)


def _every_frame(**kw) -> LoopClosureConfig:
    base = dict(
        keyframe_min_distance_m=0.0,
        keyframe_min_rotation_rad=0.0,
        keyframe_max_interval_s=0.0,
    )
    base.update(kw)
    return LoopClosureConfig(**base)


def test_keyframe_selector_pose_and_time_rules() -> None:
    ks = KeyframeSelector(min_distance_m=1.0, min_rotation_rad=0.5, max_interval_s=2.0)
    assert ks.update(0.0, _pose(0))  # first frame
    assert not ks.update(5.0, _pose(0.5))  # with a pose, time alone never adds a keyframe
    assert ks.update(5.1, _pose(1.2))  # moved 1.2 m
    assert not ks.update(5.2, _pose(1.2, yaw=0.3))
    assert ks.update(5.3, _pose(1.2, yaw=0.6))  # turned 0.6 rad
    assert not ks.update(6.0)  # no pose: time rule, 0.7 s < 2 s
    assert ks.update(7.4)
    assert not ks.update(7.5, _pose(1.2))  # last keyframe had no pose: still the time rule
    assert ks.update(9.5, _pose(1.2))
    assert not ks.update(20.0, _pose(1.3))  # both posed again: motion rule
    ks2 = KeyframeSelector(0.1, 0.1, 0.0, min_interval_s=1.0)
    assert ks2.update(0.0, _pose(0))
    assert not ks2.update(0.5, _pose(5))  # rate limit wins over motion
    with pytest.raises(ValueError):
        ks2.update(-1.0)  # time went backwards
    with pytest.raises(ValueError):
        ks2.check(2.0, np.array([0, 0, 0, 0, 0, 0, np.nan]))
    assert ks2.check(2.0, _pose(5)) and ks2.last_stamp == 0.0  # check is pure


def test_detects_revisit_and_never_matches_recent_keyframes() -> None:
    rng = np.random.default_rng(1)
    route = _places(60, seed=1)
    pm = PlaceMap(DIM, "test-model")
    cfg = _every_frame(
        sequence_length=5,
        exclude_recent_n=10,
        exclude_recent_s=0.0,
        min_confidence=0.0,
        min_sequence_score=0.0,
        velocities=(1.0,),
    )
    det = LoopClosureDetector(pm, cfg)
    results = []
    # Drive the route once (60 keyframes), then again from place 0.
    for t in range(60):
        r = det.process(_noisy(route[t], rng, 0.05), float(t))
        results.append(r)
        assert r.is_keyframe and r.place_id == t
        if r.decision is not None:  # first pass: nothing old enough to be the same place
            assert r.decision.match_id <= t - 11
            assert all(i <= t - 11 for i, _ in r.candidates)
    assert results[5].decision is None  # only 5 places, all recent
    revisits = [det.process(_noisy(route[t], rng, 0.3), 60.0 + t) for t in range(20)]
    accepted = [r.decision for r in revisits[5:] if r.decision and r.decision.accepted]
    assert len(accepted) >= 12
    for d in accepted:
        assert abs(d.match_id - (d.query_id - 60)) <= 1
        assert d.sequence_length == 5 and d.confidence > 0
    assert len(pm) == 80


def test_short_sequences_are_rejected_but_reported() -> None:
    route = _places(30, seed=7)
    pm = PlaceMap(DIM, "m")
    pm.add_batch(route, np.arange(30.0))
    cfg = _every_frame(mode="localisation", sequence_length=6, min_confidence=0.0)
    det = LoopClosureDetector(pm, cfg)
    first = det.process(route[3], 0.0).decision
    assert first.match_id == 3 and not first.accepted and "too short" in first.reason
    for t in range(4, 9):
        last = det.process(route[t], float(t)).decision
    assert last.accepted and last.match_id == 8 and last.sequence_length == 6


def test_rejected_candidates_still_reported_with_reason() -> None:
    route = _places(40, seed=2)
    pm = PlaceMap(DIM, "m")
    pm.add_batch(route, np.arange(40.0))
    cfg = _every_frame(mode="localisation", sequence_length=0, min_score=0.99)
    det = LoopClosureDetector(pm, cfg)
    r = det.process(_noisy(route[7], np.random.default_rng(3), 0.2), 0.0)
    assert r.place_id is None and len(pm) == 40  # localisation: map untouched
    assert r.decision.match_id == 7 and not r.decision.accepted
    assert "min_score" in r.decision.reason
    assert r.decision.sequence_score is None and r.decision.confidence is None


def test_pose_gate() -> None:
    route = _places(20, seed=4)
    pm = PlaceMap(DIM, "m")
    for i, d in enumerate(route):
        pm.add(d, float(i), _pose(float(i)))
    det = LoopClosureDetector(
        pm, _every_frame(mode="localisation", sequence_length=0, max_pose_distance_m=2.0)
    )
    near = det.process(route[10], 0.0, _pose(10.5)).decision
    assert near.accepted
    far = det.process(route[10], 1.0, _pose(50.0)).decision
    assert not far.accepted and "pose" in far.reason


def test_keyframing_inside_detector() -> None:
    pm = PlaceMap(DIM, "m")
    cfg = LoopClosureConfig(keyframe_min_distance_m=1.0, keyframe_min_rotation_rad=1.0)
    det = LoopClosureDetector(pm, cfg)
    d = _places(3, seed=5)
    assert det.process(d[0], 0.0, _pose(0)).is_keyframe
    r = det.process(d[1], 0.1, _pose(0.2))
    assert not r.is_keyframe and r.place_id is None and r.latency_ms >= 0
    assert det.process(d[2], 0.2, _pose(1.5)).place_id == 1


def test_bad_input_raises_and_changes_nothing() -> None:
    pm = PlaceMap(DIM, "m")
    det = LoopClosureDetector(pm, _every_frame(sequence_length=4))
    good = _places(2, seed=6)
    det.process(good[0], 0.0)
    frames = det.matcher.frames_seen
    bad_desc = good[1].copy()
    bad_desc[3] = np.nan
    for args in (
        (bad_desc, 1.0, None),
        (np.ones(DIM + 1, np.float32), 1.0, None),
        (np.zeros(DIM, np.float32), 1.0, None),
        (np.full(DIM, np.inf, np.float32), 1.0, None),
        (good[1], float("nan"), None),
        (good[1], 1.0, np.array([0, 0, 0, 0, 0, 0, np.nan])),
        (good[1], 1.0, np.zeros(3)),
        (good[1], -5.0, None),
    ):
        with pytest.raises(ValueError):
            det.process(*args)
    assert len(pm) == 1 and det.matcher.frames_seen == frames
    assert det.keyframes.last_stamp == 0.0
    assert det.process(good[1], 1.0).place_id == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LoopClosureConfig(mode="mapping")
    with pytest.raises(ValueError):
        LoopClosureConfig(top_k=0)
    with pytest.raises(ValueError):
        LoopClosureConfig(sequence_length=-1)


def test_logs_name_a_query_without_place_id_localisation() -> None:
    from lavpr_ros.core.loop_closure import NO_PLACE_ID, query_label

    assert query_label(NO_PLACE_ID) == "localisation"
    assert query_label(18446744073709551615) == "localisation"
    assert query_label(7) == "place 7"


def test_pose_gate_compares_poses_of_one_frame_only() -> None:
    """A place recorded in odom and a query in map: their coordinates are not comparable, so
    max_pose_distance_m neither rejects nor accepts on them; in one frame it gates as before."""
    d = _places(2, seed=3)

    def decide(match_frame: str) -> str:
        pm = PlaceMap(DIM, "test-model")
        pm.add(d[0], 1.0, _pose(100.0), frame_id=match_frame)
        cfg = _every_frame(
            sequence_length=0, exclude_recent_n=0, exclude_recent_s=0.0, max_pose_distance_m=5.0
        )
        det = LoopClosureDetector(pm, cfg)
        res = det.process(d[0], 50.0, _pose(0.0), frame_id="map")
        assert pm.get(res.place_id).frame_id == "map"
        assert res.decision is not None
        return res.decision.reason

    assert decide("map").startswith("pose 100.00 m away")
    assert decide("odom") == "accepted"


def test_confidence_threshold_falls_with_map_size() -> None:
    c = LoopClosureConfig(min_confidence=0.5, min_confidence_places=4000)
    assert c.confidence_threshold(0) == c.confidence_threshold(4000) == 0.5
    assert c.confidence_threshold(40_000) == pytest.approx(0.5 - 0.038)
    assert c.confidence_threshold(1_000_000) == pytest.approx(0.5 - 0.038 * np.log10(250))
    assert LoopClosureConfig(min_confidence_per_decade=0.0).confidence_threshold(10**7) == 0.5
    for bad in ({"min_confidence_places": 0}, {"min_confidence_per_decade": -0.1}):
        with pytest.raises(ValueError):
            LoopClosureConfig(**bad)


def test_larger_map_accepts_a_smaller_margin() -> None:
    """The same queries and map: a margin just under min_confidence is refused while the map
    counts as small and accepted once it counts as large (min_confidence_places)."""
    route = _places(30, seed=7)

    def last_decision(**kw):
        pm = PlaceMap(DIM, "m")
        pm.add_batch(route, np.arange(30.0))
        det = LoopClosureDetector(pm, _every_frame(mode="localisation", sequence_length=6, **kw))
        for t in range(3, 9):
            d = det.process(_noisy(route[t], np.random.default_rng(t), 0.2), float(t)).decision
        return d

    margin = last_decision(min_confidence=0.0).confidence
    strict = {"min_confidence": margin + 0.01, "min_confidence_per_decade": 0.1}
    small = last_decision(min_confidence_places=10_000, **strict)
    large = last_decision(min_confidence_places=10, **strict)  # 30 places: 0.48 decades more
    assert small.match_id == large.match_id == 8
    assert not small.accepted and f"min_confidence {margin + 0.01:.3f} (30 places)" in small.reason
    assert large.accepted and large.confidence == pytest.approx(margin)
