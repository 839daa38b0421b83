"""One frame pipeline: descriptor + stamp + pose -> keyframe -> candidates -> decision record.

The place_map node, offline bag evaluation (``lavpr bag eval``) and the online harness all drive
this object, so the policies that decide what reaches the map live in one place:

- **input sanity**: descriptors with an empty model id, a zero/negative dimension, NaN values, a
  zero stamp or a stamp far ahead of the clock are refused with a reason; so are poses stamped far
  ahead of the clock or of the image stream (one bogus odometry stamp must not starve every later
  keyframe of its pose);
- **the map's model**: it comes from configuration (``expected_model_id``) or a loaded map;
  otherwise it is fixed only once ``model_confirm_count`` consecutive descriptors agree on it, so
  one stray descriptor cannot lock the map to a foreign model;
- **pose pairing**: a descriptor waits at most ``pose_wait_s`` (wall time) for the pose at its
  stamp; while no pose has ever arrived it waits for the first one during a start-up grace
  period (``pose_startup_wait_s``), after which places are added without poses and the pipeline
  says so;
- **ordering**: small steps back in time are dropped, large ones (bag restarted, simulation reset)
  reset keyframing and sequence state;
- **sessions**: a loaded map's places stay matchable whatever their stamps (exclusion is by
  session), and an overlap of stamps is reported once.

Time is passed in, never read here: the node gives ``time.monotonic()`` and its ROS clock, offline
callers give a virtual clock, so the same stream gives the same decisions online and offline.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .loop_closure import FrameResult, LoopClosureConfig, LoopClosureDetector
from .place_map import PlaceMap
from .pose_buffer import PoseBuffer
from .verification import FAILED, CheckOutcome, KeyframeVerifier

# Statuses of a FrameRecord.
PROCESSED = "processed"  # went through the detector (keyframe or not)
REJECTED = "rejected"  # refused before the detector, with the reason


@dataclass
class PipelineOptions:
    """The pipeline's policies (node parameters of the same names)."""

    use_poses: bool = True
    pose_tolerance_s: float = 0.1
    pose_wait_s: float = 0.5
    # While no pose has ever arrived, descriptors wait this long for the first one (odometry
    # often starts after the camera, and its first samples can be late) [s, wall time].
    pose_startup_wait_s: float = 2.0
    time_jump_reset_s: float = 1.0
    # Stamps (descriptors and poses) later than the clock by more than this are refused [s];
    # <= 0 = no clock check. The clock check is skipped while the clock reads 0 (sim time
    # before the first /clock message).
    max_clock_skew_s: float = 10.0
    # Poses stamped later than both the newest image (descriptor) and the newest pose by more
    # than this are refused [s]; <= 0 off. A bogus future stamp would otherwise end every later
    # descriptor's wait for its pose.
    max_pose_lead_s: float = 60.0
    # Consecutive descriptors of one model needed before it becomes the map's model.
    model_confirm_count: int = 3
    # The map's model when known from configuration ('' = learn it from the stream).
    expected_model_id: str = ""
    # Seconds without any pose after which "no odometry" is reported [s, wall time].
    no_pose_warn_s: float = 5.0
    max_pending: int = 200
    # Recent camera (and depth) images kept for keyframe features, by stamp (verification).
    image_cache: int = 60

    def __post_init__(self) -> None:
        for name in (
            "pose_tolerance_s",
            "pose_wait_s",
            "pose_startup_wait_s",
            "time_jump_reset_s",
            "no_pose_warn_s",
        ):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if int(self.model_confirm_count) < 1:
            raise ValueError(f"model_confirm_count must be >= 1, got {self.model_confirm_count}")
        if int(self.max_pending) < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending}")


@dataclass
class FrameRecord:
    """What happened to one descriptor: the detector's result, or why it was refused."""

    stamp: float
    model_id: str
    status: str
    reason: str = ""
    pose: np.ndarray | None = None
    frame_id: str = ""  # the frame of ``pose`` ('' without a pose)
    result: FrameResult | None = None
    arrived: float = 0.0  # the caller's monotonic time at arrival
    wait_ms: float = 0.0  # time spent waiting for the pose
    detect_ms: float = 0.0
    notes: list[str] = field(default_factory=list)  # warnings raised while handling it
    payload: object = None  # the caller's object for this descriptor (e.g. the ROS message)
    verification: CheckOutcome | None = None  # geometric check of an accepted candidate
    features_ms: float = 0.0
    verify_ms: float = 0.0

    @property
    def accepted_closure(self) -> bool:
        r = self.result
        return r is not None and r.decision is not None and r.decision.accepted


@dataclass
class _Pending:
    desc: np.ndarray
    stamp: float
    model_id: str
    arrived: float
    payload: object


class FramePipeline:
    """Owns pose pairing, ordering, input sanity, the map's model and the detector calls."""

    def __init__(
        self,
        config: LoopClosureConfig,
        options: PipelineOptions | None = None,
        place_map: PlaceMap | None = None,
        map_factory: Callable[[int, str], PlaceMap] | None = None,
        poses: PoseBuffer | None = None,
        detector_kwargs: dict | None = None,
        verifier: KeyframeVerifier | None = None,
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.images: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self.depths: OrderedDict[int, np.ndarray] = OrderedDict()
        self._image_lock = threading.Lock()  # images may arrive on another executor thread
        self.options = options or PipelineOptions()
        self.map_factory = map_factory or (lambda dim, model: PlaceMap(dim, model))
        self.poses = poses if poses is not None else PoseBuffer(max_age_s=60.0)
        self.detector_kwargs = dict(detector_kwargs or {})
        self.pending: deque[_Pending] = deque()
        self.map: PlaceMap | None = None
        self.detector: LoopClosureDetector | None = None
        self.model: tuple[str, int] | None = None  # (model id, dim) the map is built with
        self._candidate: tuple[str, int] | None = None
        self._candidate_count = 0
        self._first_arrival: float | None = None
        self._last_pose_arrival: float | None = None
        self.pose_frame = ""  # frame of the buffered poses (one at a time: never mixed)
        self._newest_desc_stamp: float | None = None
        self._overlap_reported = False
        self.stream_model: tuple[str, int] | None = None  # model of the last valid descriptor
        self.counts = {
            "rejected": 0,
            "pending_dropped": 0,
            "time_resets": 0,
            "bad_poses": 0,
            "without_pose": 0,
            "model_conflicts": 0,
            "pose_frame_changes": 0,
        }
        if place_map is not None:
            self.install_map(place_map)

    # -- the map -----------------------------------------------------------------------------
    def install_map(self, place_map: PlaceMap) -> None:
        """Use this map (loaded or new); its model becomes the map's model."""
        self.map = place_map
        self.detector = LoopClosureDetector(place_map, self.config, **self.detector_kwargs)
        self.model = (place_map.model_id, place_map.dim)
        self._overlap_reported = False

    def update_config(self, config: LoopClosureConfig) -> None:
        """New detector thresholds from the next frame on (also for maps installed later);
        ValueError, nothing changed, when the running detector cannot take them."""
        if self.detector is not None:
            self.detector.update_config(config)
        self.config = config

    def expected_model(self) -> str | None:
        """The model descriptors must come from, when known (map or configuration)."""
        if self.model is not None:
            return self.model[0]
        return self.options.expected_model_id or None

    # -- inputs --------------------------------------------------------------------------------
    def push_image(self, stamp: float, image: np.ndarray) -> None:
        """A camera image (RGB uint8) for keyframe features; only kept when verifying."""
        if self.verifier is None:
            return
        with self._image_lock:
            self.images[_ns(stamp)] = (image, None)
            while len(self.images) > self.options.image_cache:
                self.images.popitem(last=False)

    def push_depth(self, stamp: float, depth_m: np.ndarray) -> None:
        """A depth image (float32 metres) aligned with the colour image of the same stamp."""
        if self.verifier is None:
            return
        with self._image_lock:
            self.depths[_ns(stamp)] = depth_m
            while len(self.depths) > self.options.image_cache:
                self.depths.popitem(last=False)

    def _take_image(self, stamp: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        with self._image_lock:
            return self._find_image(_ns(stamp))

    def _find_image(self, key: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        entry = self.images.get(key)
        image = entry[0] if entry is not None else None
        depth = self.depths.get(key)
        if depth is None and self.depths:  # nearest depth within 20 ms (separate drivers)
            near = min(self.depths, key=lambda k: abs(k - key))
            if abs(near - key) <= 20_000_000:
                depth = self.depths[near]
        return image, depth

    def push_pose(
        self,
        stamp: float,
        pose: np.ndarray,
        arrived: float,
        clock_now: float | None = None,
        frame_id: str = "",
    ) -> str | None:
        """Add a pose in ``frame_id`` (''; the frame so far); returns the reason when it is
        refused (None when taken). Poses of another frame than the buffered ones start a new
        buffer: poses in two frames are never interpolated or mixed."""
        o = self.options
        why = _stamp_problem(stamp, clock_now, o.max_clock_skew_s, "pose")
        # The stream's time: its newest image or its newest accepted pose (poses run ahead of
        # the images by the encoder's lag, which a replay at a rate factor stretches).
        newest = max(self._newest_desc_stamp or -math.inf, self.poses.latest_stamp or -math.inf)
        if why is None and o.max_pose_lead_s > 0 and self._newest_desc_stamp is not None:
            lead = stamp - newest
            if lead > o.max_pose_lead_s:
                why = (
                    f"pose stamped {lead:.1f} s after the newest image and pose "
                    f"(max_pose_lead_s {o.max_pose_lead_s:g}): clock or stamp error"
                )
        new_frame = bool(frame_id) and frame_id != self.pose_frame
        if why is None:
            buffer = self.poses
            latest = buffer.latest_stamp
            if new_frame or (latest is not None and stamp < latest - buffer.max_age_s):
                # Another frame, or far behind the buffer (the buffer holds a bogus future pose
                # or the source restarted): start over so poses flow again, never mixed.
                buffer = PoseBuffer(buffer.max_age_s, buffer.max_len)
                buffer.keep_from = self.poses.keep_from
            try:
                buffer.add(stamp, pose)
            except ValueError as exc:
                why = f"pose rejected: {exc}"
            else:
                self.poses = buffer
                if new_frame:
                    self.counts["pose_frame_changes"] += bool(self.pose_frame)
                    self.pose_frame = frame_id
        if why is not None:
            self.counts["bad_poses"] += 1
            return why
        self._last_pose_arrival = arrived
        return None

    def push_descriptor(
        self,
        descriptor: np.ndarray,
        stamp: float,
        model_id: str,
        arrived: float,
        clock_now: float | None = None,
        payload: object = None,
        image: np.ndarray | None = None,
    ) -> list[FrameRecord]:
        """Queue one descriptor and process what is ready; returns the records produced.
        ``image``: the frame it was computed from (offline callers; the node pushes images
        separately with :meth:`push_image`)."""
        if image is not None:
            self.push_image(stamp, image)
        d = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        why = _descriptor_problem(d, model_id)
        if why is None:
            why = _stamp_problem(stamp, clock_now, self.options.max_clock_skew_s, "descriptor")
        if why is not None:
            self.counts["rejected"] += 1
            return [FrameRecord(stamp, model_id, REJECTED, why, arrived=arrived, payload=payload)]
        self.stream_model = (model_id, int(d.size))
        if self._first_arrival is None:
            self._first_arrival = arrived
        self._newest_desc_stamp = max(stamp, self._newest_desc_stamp or -math.inf)
        refused, out = self._check_model(model_id, d.size, stamp, arrived, payload)
        if refused:
            return out
        if len(self.pending) >= self.options.max_pending:
            old = self.pending.popleft()
            self.counts["pending_dropped"] += 1
            out.append(
                FrameRecord(
                    old.stamp,
                    old.model_id,
                    REJECTED,
                    f"pending queue full ({self.options.max_pending}): oldest descriptor dropped",
                    arrived=old.arrived,
                    payload=old.payload,
                )
            )
        self.pending.append(_Pending(d, float(stamp), model_id, arrived, payload))
        return out + self.flush(arrived)

    def _check_model(
        self, model_id: str, dim: int, stamp: float, arrived: float, payload: object
    ) -> tuple[bool, list[FrameRecord]]:
        """(refused, records): refuse a descriptor of a foreign model; confirm the stream's
        model when it is not known yet (records of queued descriptors dropped then)."""
        expected = self.expected_model()
        if self.model is not None:
            if (model_id, dim) != self.model:
                self.counts["model_conflicts"] += 1
                self.counts["rejected"] += 1
                why = (
                    f"descriptor from model '{model_id}' ({dim}-d) does not fit the map built "
                    f"with '{self.model[0]}' ({self.model[1]}-d); dropped"
                )
                rec = FrameRecord(stamp, model_id, REJECTED, why, arrived=arrived, payload=payload)
                return True, [rec]
            return False, []
        if expected is not None and model_id != expected:
            self.counts["model_conflicts"] += 1
            self.counts["rejected"] += 1
            why = (
                f"descriptor from model '{model_id}' but the configured model is '{expected}'; "
                "dropped"
            )
            rec = FrameRecord(stamp, model_id, REJECTED, why, arrived=arrived, payload=payload)
            return True, [rec]
        key = (model_id, dim)
        if key == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = key, 1
        need = 1 if expected is not None else self.options.model_confirm_count
        if self._candidate_count < need:
            return False, []
        # Confirmed: the map is built with this model; queued descriptors of others are dropped.
        self.install_map(self.map_factory(dim, model_id))
        out = []
        keep: deque[_Pending] = deque()
        for p in self.pending:
            if (p.model_id, p.desc.size) == key:
                keep.append(p)
                continue
            self.counts["rejected"] += 1
            out.append(
                FrameRecord(
                    p.stamp,
                    p.model_id,
                    REJECTED,
                    f"descriptor from model '{p.model_id}' ({p.desc.size}-d) dropped: the "
                    f"stream's model is '{model_id}' ({dim}-d)",
                    arrived=p.arrived,
                    payload=p.payload,
                )
            )
        self.pending = keep
        return False, out

    # -- processing ------------------------------------------------------------------------------
    def flush(self, now: float, force: bool = False) -> list[FrameRecord]:
        """Process queued descriptors whose pose is available or no longer worth waiting for
        (``force``: all of them, e.g. at the end of a bag)."""
        out: list[FrameRecord] = []
        if self.map is None:
            self._hold_poses()
            return out  # the stream's model is not confirmed yet
        o = self.options
        while self.pending:
            p = self.pending[0]
            pose = None
            if o.use_poses:
                pose = self.poses.lookup(p.stamp, o.pose_tolerance_s)
                if pose is None and not force and self._pose_may_come(p, now):
                    break
            self.pending.popleft()
            out.append(self._process(p, pose, now))
        self._hold_poses()
        return out

    def _hold_poses(self) -> None:
        """Keep the poses that queued and later descriptors will ask for, however far the
        pose stream runs ahead of a lagging encoder (the buffer prunes by age otherwise)."""
        oldest = self._newest_desc_stamp
        if self.pending:
            oldest = min(self.pending[0].stamp, oldest if oldest is not None else math.inf)
        if oldest is not None:
            self.poses.keep_from = oldest - self.options.pose_tolerance_s

    def _pose_may_come(self, p: _Pending, now: float) -> bool:
        o = self.options
        latest = self.poses.latest_stamp
        if latest is None and self._last_pose_arrival is None:
            # No pose ever: wait only during the start-up grace period (a robot without
            # odometry then gets its places without poses, and is told so).
            grace = max(o.pose_wait_s, o.pose_startup_wait_s)
            return self._first_arrival is not None and now - self._first_arrival < grace
        if now - p.arrived >= o.pose_wait_s:
            return False
        return latest is None or latest < p.stamp + o.pose_tolerance_s

    def _process(self, p: _Pending, pose: np.ndarray | None, now: float) -> FrameRecord:
        assert self.map is not None and self.detector is not None
        rec = FrameRecord(p.stamp, p.model_id, PROCESSED, arrived=p.arrived, payload=p.payload)
        rec.pose = pose
        rec.frame_id = (self.pose_frame or self.map.frame_id) if pose is not None else ""
        rec.wait_ms = max(0.0, (now - p.arrived) * 1e3)
        if pose is None and self.options.use_poses:
            self.counts["without_pose"] += 1
            latest = self.poses.latest_stamp
            if latest is not None:  # poses flow, yet none for this stamp: say which case
                rec.notes.append(
                    f"descriptor at {p.stamp:.3f} s added without a pose: none within "
                    f"{self.options.pose_tolerance_s:g} s after waiting {rec.wait_ms:.0f} ms "
                    f"(newest pose {latest:.3f} s)"
                )
        self._check_session_overlap(p.stamp, rec)
        last = self.detector.keyframes.last_stamp
        if last is not None and p.stamp < last:
            jump = last - p.stamp
            if jump <= self.options.time_jump_reset_s:
                self.counts["rejected"] += 1
                rec.status = REJECTED
                rec.reason = f"descriptor {jump:.3f} s older than the last keyframe: dropped"
                return rec
            rec.notes.append(
                f"time jumped back by {jump:.1f} s (bag restarted or simulation reset): "
                "keyframing and sequence state reset, the map is kept"
            )
            self.detector.reset()
            self.counts["time_resets"] += 1
        t0 = time.perf_counter()
        try:
            rec.result = self.detector.process(p.desc, p.stamp, pose, rec.frame_id or None)
        except ValueError as exc:
            self.counts["rejected"] += 1
            rec.status, rec.reason = REJECTED, f"descriptor rejected: {exc}"
            return rec
        rec.detect_ms = (time.perf_counter() - t0) * 1e3
        if self.verifier is not None and rec.result.is_keyframe:
            self._verify(rec)
        return rec

    def _verify(self, rec: FrameRecord) -> None:
        """Features of the new keyframe; the geometric check of an accepted candidate, which
        turns it into a rejection (with the reason) when the geometry disagrees."""
        assert self.verifier is not None and self.map is not None and rec.result is not None
        res = rec.result
        image, depth = self._take_image(rec.stamp)
        t0 = time.perf_counter()
        feats, why = self.verifier.on_keyframe(self.map, res.place_id, image, depth)
        t1 = time.perf_counter()
        rec.features_ms = (t1 - t0) * 1e3
        if why and feats is not None:
            rec.notes.append(why)
        d = res.decision
        if d is None or not d.accepted:
            return
        rec.verification = self.verifier.check(self.map, feats, why, int(d.match_id))
        rec.verify_ms = (time.perf_counter() - t1) * 1e3
        if rec.verification.status == FAILED:
            d.accepted = False
            d.reason = rec.verification.reason

    def _check_session_overlap(self, stamp: float, rec: FrameRecord) -> None:
        m = self.map
        if self._overlap_reported or m is None or m.session_start == 0:
            return
        prev = m.stamps[: m.session_start]
        if len(prev) and float(prev.min()) <= stamp <= float(prev.max()):
            rec.notes.append(
                f"this session's stamps ({stamp:.1f} s) overlap the loaded map's "
                f"({float(prev.min()):.1f}..{float(prev.max()):.1f} s): temporal exclusion "
                "applies within this session only, the loaded places stay matchable"
            )
            self._overlap_reported = True

    # -- status ----------------------------------------------------------------------------------
    def pose_status(self, now: float) -> str:
        """'' when poses flow (or are not used), else a warning for diagnostics and the log."""
        o = self.options
        if not o.use_poses or self._first_arrival is None:
            return ""
        if self._last_pose_arrival is None:
            if now - self._first_arrival >= o.no_pose_warn_s:
                return (
                    f"no pose received for {now - self._first_arrival:.0f} s since the first "
                    "descriptor: places are added without poses (check the odometry/pose topic)"
                )
            return ""
        silent = now - self._last_pose_arrival
        if silent >= o.no_pose_warn_s:
            return f"no pose received for {silent:.0f} s: places are added without poses"
        return ""

    def reset_stream(self) -> None:
        """Forget queued descriptors and poses (a new map was installed by the user)."""
        self.pending.clear()


def _ns(stamp: float) -> int:
    return round(float(stamp) * 1e9)


def _descriptor_problem(d: np.ndarray, model_id: str) -> str | None:
    if not model_id or not str(model_id).strip():
        return "descriptor has an empty model_id: refused (the encoder must name its model)"
    if d.size == 0:
        return f"descriptor from '{model_id}' is empty (dim 0): refused"
    if not np.isfinite(d).all():
        return f"descriptor from '{model_id}' has NaN/inf values: refused"
    if float(np.linalg.norm(d)) <= 1e-12:
        return f"descriptor from '{model_id}' is all-zero: refused"
    return None


def _stamp_problem(stamp: float, clock_now: float | None, skew: float, what: str) -> str | None:
    if not math.isfinite(stamp):
        return f"{what} stamp {stamp} is not a finite time: refused"
    if stamp <= 0.0:
        return f"{what} stamp is zero (unset header stamp): refused"
    if skew > 0 and clock_now is not None and clock_now > 0 and stamp > clock_now + skew:
        return (
            f"{what} stamped {stamp - clock_now:.1f} s in the future of the node clock "
            f"(max_clock_skew_s {skew:g}): refused"
        )
    return None
