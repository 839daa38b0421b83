"""The core frame pipeline that place_map, bag evaluation and the online harness share.

Issue #15 items 6-9, 15 and 16 are decided here; each test names the failure it reproduces."""

from __future__ import annotations

import numpy as np
import pytest

from lavpr_ros.core.frame_pipeline import PROCESSED, REJECTED, FramePipeline, PipelineOptions
from lavpr_ros.core.loop_closure import LoopClosureConfig
from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.core.pose_buffer import PoseBuffer

DIM = 16
POSE = np.array([0, 0, 0, 0, 0, 0, 1.0])


def _d(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _config(**kw) -> LoopClosureConfig:
    base = dict(
        sequence_length=0,
        keyframe_min_distance_m=0.0,
        keyframe_min_rotation_rad=0.0,
        keyframe_max_interval_s=0.0,
        exclude_recent_n=2,
        exclude_recent_s=5.0,
    )
    base.update(kw)
    return LoopClosureConfig(**base)


def _pipe(**opts) -> FramePipeline:
    opts.setdefault("use_poses", False)
    return FramePipeline(_config(), PipelineOptions(**opts))


def _push(p: FramePipeline, seed: int, stamp: float, model: str = "m", dim: int = DIM, **kw):
    return p.push_descriptor(_d(seed, dim), stamp, model, arrived=kw.pop("arrived", stamp), **kw)


def test_item6_empty_model_id_or_dim_refused() -> None:
    """Before: a first descriptor with an empty model_id or dim 0 crashed place_map."""
    p = _pipe()
    (r,) = p.push_descriptor(_d(1), 10.0, "", arrived=0.0)
    assert r.status == REJECTED and "empty model_id" in r.reason
    (r,) = p.push_descriptor(np.zeros(0, np.float32), 10.0, "m", arrived=0.0)
    assert r.status == REJECTED and "dim 0" in r.reason
    assert p.map is None and p.counts["rejected"] == 2


def test_item7_stray_descriptor_cannot_lock_the_map() -> None:
    """Before: one stray 8-d 'evil' descriptor first fixed the map's model until restart."""
    p = _pipe(model_confirm_count=3)
    assert _push(p, 0, 10.0, model="evil", dim=8) == []  # queued, not trusted yet
    out = []
    for i in range(3):
        out += _push(p, i + 1, 11.0 + i)
    assert p.model == ("m", DIM)
    dropped = [r for r in out if r.status == REJECTED]
    assert len(dropped) == 1 and "'evil'" in dropped[0].reason
    processed = [r for r in out if r.status == PROCESSED]
    assert [r.stamp for r in processed] == [11.0, 12.0, 13.0]  # queued ones kept, in order
    (r,) = _push(p, 9, 14.0, model="evil", dim=8)
    assert r.status == REJECTED and "does not fit the map" in r.reason


def test_item7_configured_model_rules() -> None:
    p = _pipe(expected_model_id="m")
    (r,) = _push(p, 0, 10.0, model="evil", dim=8)
    assert r.status == REJECTED and "configured model is 'm'" in r.reason
    (r,) = _push(p, 1, 11.0)
    assert r.status == PROCESSED and p.model == ("m", DIM)


def test_item7_alternating_models_never_confirm() -> None:
    p = _pipe(model_confirm_count=2)
    for i in range(6):
        _push(p, i, 10.0 + i, model="a" if i % 2 else "b")
    assert p.map is None


def test_item8_future_pose_refused_and_poses_keep_flowing() -> None:
    """Before: one odometry message stamped far in the future (sec = 2^31-1) was taken, after
    which no keyframe got a pose until restart."""
    p = _pipe(use_poses=True, expected_model_id="m", max_clock_skew_s=10.0)
    assert p.push_pose(100.45, POSE, arrived=0.0, clock_now=100.0) is None
    why = p.push_pose(2.0**31 - 1, POSE, arrived=0.0, clock_now=100.0)
    assert why is not None and "in the future of the node clock" in why
    assert p.push_pose(100.55, POSE, arrived=0.0, clock_now=101.0) is None
    (r,) = _push(p, 1, 100.5, arrived=0.0, clock_now=101.0)
    assert r.status == PROCESSED and r.pose is not None


def test_item8_future_pose_without_clock_is_caught_by_the_image_stream() -> None:
    """Simulation time before /clock reads 0: the image stream bounds poses instead, and a
    bogus pose that got in anyway is forgotten once real poses arrive (automatic recovery)."""
    p = _pipe(use_poses=True, expected_model_id="m", max_pose_lead_s=60.0)
    _push(p, 1, 100.0, arrived=0.0)  # no pose: processed without after the grace period
    p.flush(10.0, force=True)
    why = p.push_pose(2.0**31 - 1, POSE, arrived=0.0, clock_now=0.0)
    assert why is not None and "after the newest image" in why
    # Before any image, the lead check cannot apply; a later real pose resets the buffer.
    q = _pipe(use_poses=True, expected_model_id="m", max_pose_lead_s=60.0)
    assert q.push_pose(2.0**31 - 1, POSE, arrived=0.0, clock_now=0.0) is None
    assert q.push_pose(200.0, POSE, arrived=0.0, clock_now=0.0) is None
    (r,) = _push(q, 1, 200.0, arrived=0.0)
    assert r.status == PROCESSED and r.pose is not None


def test_poses_far_ahead_of_a_lagging_encoder_are_kept_for_it() -> None:
    """Before: a replay 20x faster than recorded with the encoder 3 s (wall) behind put the
    odometry 60 s of stamps ahead of the descriptors; poses beyond max_pose_lead_s were refused
    and the 60 s pose history pruned the ones the late descriptors needed, so their loop
    closures carried no or wrong poses (the online-vs-offline graph test failed in CI)."""
    p = _pipe(use_poses=True, expected_model_id="m", max_pose_lead_s=60.0)
    assert p.push_pose(1000.0, POSE, arrived=0.0) is None
    (r,) = _push(p, 0, 1000.0, arrived=0.0)  # the stream has started
    assert r.pose is not None
    for i in range(1, 301):  # 300 s of odometry arrives before the next descriptor
        assert p.push_pose(1000.0 + i, POSE + np.array([i, 0, 0, 0, 0, 0, 0]), arrived=0.0) is None
    for i in range(1, 301):
        (r,) = _push(p, i, 1000.0 + i, arrived=1.0)
        assert r.status == PROCESSED and r.pose is not None, i
        assert r.pose[0] == pytest.approx(i)
    assert p.counts["bad_poses"] == 0 and p.counts["without_pose"] == 0
    # Once the descriptors caught up, the history is pruned by age again.
    assert p.push_pose(1301.0, POSE, arrived=2.0) is None
    assert len(p.poses) <= 62


@pytest.mark.parametrize("stamp", [0.0, 2.0**31 - 1, float("nan")])
def test_item9_descriptor_stamp_zero_or_future_refused(stamp: float) -> None:
    """Before: a descriptor stamped 0 or far in the future was added after a 'time jumped back'
    warning."""
    p = _pipe(expected_model_id="m")
    _push(p, 1, 100.0, clock_now=100.0)
    (r,) = _push(p, 2, stamp, clock_now=100.0)
    assert r.status == REJECTED
    assert len(p.map) == 1 and p.counts["time_resets"] == 0


def test_item15_no_odometry_is_reported_and_does_not_stall() -> None:
    """Before: without odometry place_map stayed 'ok', each descriptor waited pose_wait_s
    (latency ~510 ms) and places were added without poses silently."""
    p = _pipe(
        use_poses=True,
        expected_model_id="m",
        pose_wait_s=0.5,
        pose_startup_wait_s=0.5,
        no_pose_warn_s=2.0,
    )
    assert _push(p, 1, 10.0, arrived=0.0) == []  # start-up grace: its pose may still come
    assert len(p.flush(0.6)) == 1  # grace over: processed without pose
    (r,) = _push(p, 2, 11.0, arrived=1.0)  # no pose ever: no more waiting
    assert r.status == PROCESSED and r.pose is None and r.wait_ms == 0.0
    assert p.pose_status(1.0) == ""
    assert "no pose received for 3 s" in p.pose_status(3.0)
    assert p.counts["without_pose"] == 2


def test_first_pose_later_than_pose_wait_still_pairs() -> None:
    """Odometry starting (or its first samples arriving) a second after the camera: the first
    descriptors wait for the start-up grace, not just pose_wait_s, and keep their poses."""
    p = _pipe(use_poses=True, expected_model_id="m", pose_wait_s=0.5, pose_startup_wait_s=2.0)
    assert _push(p, 1, 10.0, arrived=0.0) == []
    assert _push(p, 2, 11.0, arrived=0.9) == []
    assert p.flush(1.2) == []  # past pose_wait_s, inside the grace: still waiting
    assert p.push_pose(10.0, POSE, arrived=1.5) is None
    assert p.push_pose(11.0, POSE, arrived=1.5) is None
    assert p.push_pose(12.0, POSE, arrived=1.5) is None
    recs = p.flush(1.5)
    assert [r.pose is not None for r in recs] == [True, True]
    # Once poses flow, a missing one costs pose_wait_s only.
    assert _push(p, 3, 20.0, arrived=2.0) == []
    (r,) = p.flush(2.6)
    assert r.pose is None and "added without a pose" in r.notes[0]


def test_item16_second_session_overlapping_stamps_still_closes_loops(tmp_path) -> None:
    """Before: a second session whose stamps overlapped the loaded map's gave zero closures
    silently (temporal exclusion by time). Now exclusion is by session, and it is reported."""
    first = PlaceMap(DIM, "m")
    for i in range(10):
        first.add(_d(i), 100.0 + i)
    first.save(tmp_path / "map")
    loaded = PlaceMap.load(tmp_path / "map")
    assert loaded.session_id == 1 and loaded.session_start == 10
    p = FramePipeline(
        _config(exclude_recent_s=30.0, exclude_recent_n=3),
        PipelineOptions(use_poses=False),
        place_map=loaded,
    )
    recs = []
    for i in range(10):  # the same route again, same stamps (a bag replayed onto its map)
        recs += _push(p, i, 100.0 + i)
    closures = [r.result.decision for r in recs if r.result and r.result.decision]
    assert [d.match_id for d in closures] == list(range(10))
    assert all(d.score == pytest.approx(1.0) for d in closures)
    notes = [n for r in recs for n in r.notes]
    assert len(notes) == 1 and "overlap the loaded map" in notes[0]
    # Within the new session, temporal exclusion still applies.
    assert p.detector._eligible(109.0) == 10
    p.map.save(tmp_path / "map2")
    again = PlaceMap.load(tmp_path / "map2")
    assert list(again.sessions) == [0] * 10 + [1] * 10 and again.session_id == 2


def test_time_jump_policy_and_out_of_order() -> None:
    p = _pipe(expected_model_id="m", time_jump_reset_s=1.0)
    _push(p, 1, 10.0)
    (r,) = _push(p, 2, 9.5)
    assert r.status == REJECTED and "older than the last keyframe" in r.reason
    (r,) = _push(p, 3, 1.0)
    assert r.status == PROCESSED and "time jumped back" in r.notes[0]
    assert p.counts["time_resets"] == 1 and len(p.map) == 2


def test_pose_wait_and_late_pose() -> None:
    """A descriptor waits for its pose (up to pose_wait_s), and takes it when it comes."""
    p = FramePipeline(
        _config(),
        PipelineOptions(use_poses=True, expected_model_id="m", pose_wait_s=0.5),
        poses=PoseBuffer(60.0),
    )
    p.push_pose(9.8, POSE, arrived=0.0)
    assert _push(p, 1, 10.0, arrived=0.0) == []  # the pose at 10.0 may still come
    assert p.push_pose(10.05, POSE + np.array([1, 0, 0, 0, 0, 0, 0]), arrived=0.1) is None
    (r,) = p.flush(0.1)
    assert r.status == PROCESSED and r.pose is not None and r.pose[0] == 1.0  # the late pose


def test_places_are_stored_in_their_poses_frame_and_frames_never_mix() -> None:
    """A keyframe's pose keeps the frame of the pose messages it came from; a new frame (pose
    source switched) starts a new pose buffer, so no pose is interpolated across frames."""
    p = _pipe(use_poses=True, expected_model_id="m", pose_wait_s=0.0)
    at = np.array([1.0, 2.0, 0, 0, 0, 0, 1.0])
    assert p.push_pose(10.0, at, arrived=0.0, frame_id="map") is None
    assert p.push_pose(10.2, at, arrived=0.0, frame_id="map") is None
    (r,) = _push(p, 1, 10.1)
    assert r.status == PROCESSED and r.frame_id == "map"
    assert p.map is not None and p.map.get(0).frame_id == "map"
    # The same source in another frame: the map-frame poses are dropped, not mixed in.
    far = np.array([50.0, 0, 0, 0, 0, 0, 1.0])
    assert p.push_pose(10.35, far, arrived=0.0, frame_id="odom") is None
    assert p.counts["pose_frame_changes"] == 1 and p.pose_frame == "odom" and len(p.poses) == 1
    (r,) = _push(p, 2, 10.3)
    assert r.frame_id == "odom" and r.pose is not None and r.pose[0] == pytest.approx(50.0)
    assert p.map.frame_ids == ["map", "odom"]
    # A refused pose in a new frame changes nothing.
    assert p.push_pose(10.4, [np.nan] * 7, arrived=0.0, frame_id="map") is not None
    assert p.pose_frame == "odom" and len(p.poses) == 1
    # A place without a pose gets the map's frame (its frame names nothing then).
    (r,) = _push(p, 3, 20.0)
    assert r.pose is None and r.frame_id == "" and p.map.get(2).frame_id == p.map.frame_id
