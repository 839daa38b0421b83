"""Loop-closure detection: keyframing, sequence matching and the accept/reject decision.

One :meth:`LoopClosureDetector.process` call per incoming frame, with no ROS types, so the live
node, bag replay and offline evaluation run exactly the same code. The best candidate is reported
even when it is rejected (with the reason), so precision-recall curves can be swept afterwards
over any threshold.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .place_map import PlaceMap
from .poses import validate_pose
from .sequence import DEFAULT_VELOCITIES, SequenceMatcher, SequenceResult
from .sequence_shortlist import ShortlistSequenceMatcher

MODES = ("slam", "localisation")
SEQUENCE_SEARCHES = ("full", "shortlist", "auto")

# LoopClosure.query_id (uint64) of a query that was not added as a place (localisation).
NO_PLACE_ID = 2**64 - 1


def query_label(query_id: int) -> str:
    """How logs name a closure's query: 'place N', or 'localisation' without a place id."""
    return "localisation" if int(query_id) == NO_PLACE_ID else f"place {int(query_id)}"


def _check_stamp(stamp: float) -> float:
    s = float(stamp)
    if not math.isfinite(s):
        raise ValueError(f"stamp must be a finite number of seconds, got {stamp}")
    return s


def rotation_angle(q1: np.ndarray, q2: np.ndarray) -> float:
    """Angle (rad) of the rotation between two unit quaternions (sign-invariant)."""
    dot = min(1.0, abs(float(np.dot(q1, q2))))
    return 2.0 * math.acos(dot)


class KeyframeSelector:
    """Decides which frames become map places, so the map grows with distance, not frame rate.

    With poses: a keyframe when the camera moved >= ``min_distance_m`` or turned >=
    ``min_rotation_rad`` since the last keyframe (a parked robot adds nothing). Without a pose
    (or when the last keyframe had none): a keyframe every ``max_interval_s``. Never two keyframes
    closer than ``min_interval_s``. The first frame is always a keyframe. All zero: every frame.
    """

    def __init__(
        self,
        min_distance_m: float = 0.5,
        min_rotation_rad: float = 0.35,
        max_interval_s: float = 1.0,
        min_interval_s: float = 0.0,
    ) -> None:
        vals = (min_distance_m, min_rotation_rad, max_interval_s, min_interval_s)
        if any(not math.isfinite(v) or v < 0 for v in vals):
            raise ValueError(f"keyframe thresholds must be finite and >= 0, got {vals}")
        self.min_distance_m = float(min_distance_m)
        self.min_rotation_rad = float(min_rotation_rad)
        self.max_interval_s = float(max_interval_s)
        self.min_interval_s = float(min_interval_s)
        self.reset()

    def reset(self) -> None:
        self.last_stamp: float | None = None
        self.last_pose: np.ndarray | None = None

    def check(self, stamp: float, pose: np.ndarray | None = None) -> bool:
        """Would this frame be a keyframe? Pure: call :meth:`accept` to record it."""
        stamp = _check_stamp(stamp)
        pose = validate_pose(pose)
        if self.last_stamp is None:
            return True
        dt = stamp - self.last_stamp
        if dt < 0:
            raise ValueError(
                f"stamp {stamp} is before the last keyframe ({self.last_stamp}); "
                "time went backwards (bag restarted?): call reset()"
            )
        if dt < self.min_interval_s:
            return False
        if pose is None or self.last_pose is None:
            return dt >= self.max_interval_s
        moved = float(np.linalg.norm(pose[:3] - self.last_pose[:3]))
        turned = rotation_angle(pose[3:], self.last_pose[3:])
        return moved >= self.min_distance_m or turned >= self.min_rotation_rad

    def accept(self, stamp: float, pose: np.ndarray | None = None) -> None:
        self.last_stamp = _check_stamp(stamp)
        self.last_pose = validate_pose(pose)

    def update(self, stamp: float, pose: np.ndarray | None = None) -> bool:
        """:meth:`check` and, if it is a keyframe, :meth:`accept`."""
        is_kf = self.check(stamp, pose)
        if is_kf:
            self.accept(stamp, pose)
        return is_kf


@dataclass
class LoopClosureConfig:
    """Every tunable of the detector (defaults suit a ground robot with patch-norm or CNN input)."""

    # "slam": keyframes are added to the map and recent ones are excluded from matching;
    # "localisation": the map is a fixed prior map (no additions, no temporal exclusion).
    mode: str = "slam"
    # Single-frame candidates reported per keyframe (top-k cosine among eligible places).
    top_k: int = 5
    # Places stamped within this many seconds of the current frame are never matched ...
    exclude_recent_s: float = 30.0
    # ... nor the newest this-many keyframes (keep it above sequence_length, so that a sequence
    # cannot simply run back along the trajectory just driven).
    exclude_recent_n: int = 30
    # Keyframes per sequence (SeqSLAM-style); 0 or 1 = single-frame matching.
    sequence_length: int = 10
    # Relative velocities (query keyframes per map place) searched by the sequence matcher.
    velocities: tuple[float, ...] = DEFAULT_VELOCITIES
    # Keyframes needed before a sequence decision may be accepted (None = sequence_length // 2).
    min_sequence_frames: int | None = None
    # Map places either side of the best sequence ignored when taking the second best.
    sequence_exclusion_window: int = 10
    # Sequence similarity normalisation (see core/sequence.py): map-side radius, query-side
    # window (0 = off), std floor; contrast_normalise False uses raw cosines.
    contrast_normalise: bool = True
    contrast_window: int = 5
    query_window: int = 20
    std_floor: float = 0.5
    # Where sequences are scored: "full" (every eligible place per keyframe, O(N)), "shortlist"
    # (only near the index's top shortlist_candidates of the last sequence_length keyframes and
    # the previous match; core/sequence_shortlist.py) or "auto" (shortlist once the eligible
    # map has shortlist_min_places places; full below, where it is cheap and exhaustive).
    sequence_search: str = "auto"
    shortlist_min_places: int = 20_000
    shortlist_candidates: int = 30
    # Acceptance: the match's single-frame cosine must reach min_score ...
    min_score: float = 0.0
    # ... and with sequences, the sequence score (mean normalised similarity) and its margin over
    # the best sequence elsewhere (confidence) must reach these. On Nordland (L=10) 0.5/0.5 gave
    # precision 1.000 at recall 0.47 (median confidence: correct 0.60, wrong 0.03).
    min_sequence_score: float = 0.5
    min_confidence: float = 0.5
    # ... up to min_confidence_places eligible places; a larger map asks min_confidence_per_decade
    # less per decade of places beyond: among N places the best competing trajectory scores
    # higher as N grows (the demo's runner-up rose by a median 0.122 from its own ~600 places to
    # 1M places: 0.038 per decade), and a fixed margin then loses true matches (docs/scale.md).
    min_confidence_places: int = 4000
    min_confidence_per_decade: float = 0.038
    # Optional pose-consistency gate: reject when the matched place's stored pose is farther than
    # this from the current pose (None = off; odometry drift makes it unsafe by default).
    max_pose_distance_m: float | None = None
    # Keyframing (see KeyframeSelector); all 0 makes every frame a keyframe.
    keyframe_min_distance_m: float = 0.5
    keyframe_min_rotation_rad: float = 0.35
    keyframe_max_interval_s: float = 1.0
    keyframe_min_interval_s: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.exclude_recent_s < 0 or self.exclude_recent_n < 0:
            raise ValueError("temporal exclusion must be >= 0")
        if self.sequence_length < 0:
            raise ValueError(f"sequence_length must be >= 0, got {self.sequence_length}")
        if self.sequence_search not in SEQUENCE_SEARCHES:
            raise ValueError(
                f"sequence_search must be one of {SEQUENCE_SEARCHES}, got {self.sequence_search!r}"
            )
        if self.min_confidence_places < 1:
            raise ValueError(
                f"min_confidence_places must be >= 1, got {self.min_confidence_places}"
            )
        if not math.isfinite(float(self.min_confidence_per_decade)) or (
            self.min_confidence_per_decade < 0
        ):
            raise ValueError(
                f"min_confidence_per_decade must be finite and >= 0, got "
                f"{self.min_confidence_per_decade}"
            )
        if self.shortlist_min_places < 0 or self.shortlist_candidates < 1:
            raise ValueError("shortlist_min_places must be >= 0 and shortlist_candidates >= 1")
        if self.max_pose_distance_m is not None and self.max_pose_distance_m < 0:
            raise ValueError("max_pose_distance_m must be >= 0 or None")
        for name in ("min_score", "min_sequence_score", "min_confidence", "std_floor"):
            if math.isnan(float(getattr(self, name))):
                raise ValueError(f"{name} must be a number, got NaN")
        for name in KEYFRAME_FIELDS:
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        self.velocities = tuple(float(v) for v in self.velocities)

    def confidence_threshold(self, n_places: int) -> float:
        """min_confidence for a map of ``n_places`` eligible places (lower beyond
        min_confidence_places, by min_confidence_per_decade per decade)."""
        decades = math.log10(max(1, int(n_places)) / self.min_confidence_places)
        return self.min_confidence - self.min_confidence_per_decade * max(0.0, decades)


# Keyframing thresholds of LoopClosureConfig (KeyframeSelector's arguments, in order).
KEYFRAME_FIELDS = (
    "keyframe_min_distance_m",
    "keyframe_min_rotation_rad",
    "keyframe_max_interval_s",
    "keyframe_min_interval_s",
)
# Fields that shape the sequence matcher and the map's role: a running detector keeps them
# (LoopClosureDetector.update_config refuses a change; build a new detector instead).
STRUCTURAL_FIELDS = (
    "mode",
    "sequence_length",
    "velocities",
    "sequence_exclusion_window",
    "contrast_normalise",
    "contrast_window",
    "query_window",
    "std_floor",
    "sequence_search",
    "shortlist_min_places",
    "shortlist_candidates",
)


@dataclass
class LoopClosure:
    """The best match of one keyframe; ``accepted`` False keeps it for PR sweeps, with why."""

    query_id: int | None  # id the keyframe got in the map (None in localisation mode)
    match_id: int
    score: float  # single-frame cosine between the keyframe and the matched place
    sequence_score: float | None  # None for single-frame matching
    confidence: float | None  # sequence margin over the best elsewhere; None single-frame
    sequence_length: int  # keyframes the decision rests on (1 for single-frame)
    accepted: bool
    reason: str


@dataclass
class FrameResult:
    is_keyframe: bool
    place_id: int | None
    decision: LoopClosure | None
    candidates: list[tuple[int, float]] = field(default_factory=list)
    latency_ms: float = 0.0


class LoopClosureDetector:
    """Keyframe -> similarities to eligible places -> sequence update -> decide -> add to map."""

    def __init__(
        self,
        place_map: PlaceMap,
        config: LoopClosureConfig | None = None,
        sequence_encoder: Any | None = None,
        sequence_shortlist_k: int = 20,
    ) -> None:
        """``sequence_encoder`` (optional, a core.sequence_encoder.SequenceEncoder): hierarchical
        search - the match is the best of the ``sequence_shortlist_k`` places whose sequence
        descriptors are nearest the query's, by the sequence matcher's scores (or by single-frame
        similarity without one). None keeps the plain behaviour."""
        self.place_map = place_map
        self.config = config or LoopClosureConfig()
        c = self.config
        self._init_sequence_encoder(sequence_encoder, sequence_shortlist_k)
        self.keyframes = KeyframeSelector(
            c.keyframe_min_distance_m,
            c.keyframe_min_rotation_rad,
            c.keyframe_max_interval_s,
            c.keyframe_min_interval_s,
        )
        self.matcher: SequenceMatcher | None = None
        self.shortlist: ShortlistSequenceMatcher | None = None
        self.shortlist_active = False
        if c.sequence_length > 1:
            self.matcher = SequenceMatcher(
                length=c.sequence_length,
                velocities=c.velocities,
                exclusion_window=c.sequence_exclusion_window,
                contrast_normalise=c.contrast_normalise,
                contrast_window=c.contrast_window,
                query_window=c.query_window,
                std_floor=c.std_floor,
                min_length=1,  # partial sequences are scored; acceptance checks the length
            )
            if c.sequence_search == "shortlist" and sequence_encoder is not None:
                raise ValueError("sequence_search 'shortlist' needs sequence_model off")
            if c.sequence_search != "full" and sequence_encoder is None:  # SeqNet: full scores
                self.shortlist = ShortlistSequenceMatcher(
                    self.matcher, place_map.store, dense_scores=False
                )
        self.min_sequence_frames = (
            max(1, c.sequence_length // 2)
            if c.min_sequence_frames is None
            else int(c.min_sequence_frames)
        )

    def update_config(self, config: LoopClosureConfig) -> None:
        """Use new thresholds (acceptance, top-k, temporal exclusion, keyframing) from the next
        frame on; keyframing and sequence state are kept. ValueError, detector unchanged, when a
        structural field (STRUCTURAL_FIELDS) differs: those need a new detector."""
        changed = [f for f in STRUCTURAL_FIELDS if getattr(config, f) != getattr(self.config, f)]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} cannot change on a running detector (build a new one)"
            )
        min_frames = (
            max(1, config.sequence_length // 2)
            if config.min_sequence_frames is None
            else int(config.min_sequence_frames)
        )
        kf = KeyframeSelector(*(getattr(config, f) for f in KEYFRAME_FIELDS))  # validates
        self.config = config
        self.min_sequence_frames = min_frames
        k = self.keyframes
        k.min_distance_m, k.min_rotation_rad = kf.min_distance_m, kf.min_rotation_rad
        k.max_interval_s, k.min_interval_s = kf.max_interval_s, kf.min_interval_s

    def reset(self) -> None:
        """Forget keyframing and sequence state (the map is kept)."""
        self.keyframes.reset()
        if self.matcher is not None:
            self.matcher.reset()
        if self.shortlist is not None:
            self.shortlist.reset()
        self.shortlist_active = False
        if self.seq_window is not None:
            self.seq_window.reset()

    def _check_descriptor(self, descriptor: np.ndarray) -> np.ndarray:
        d = np.asarray(descriptor, dtype=np.float32)
        dim = self.place_map.dim
        if d.shape != (dim,):
            raise ValueError(f"descriptor must have shape ({dim},), got {d.shape}")
        if not np.isfinite(d).all():
            raise ValueError("descriptor has NaN/inf values")
        if float(np.linalg.norm(d)) <= 1e-12:
            raise ValueError("descriptor is all-zero; it has no direction to match")
        return d

    def _eligible(self, stamp: float) -> int:
        """Number of leading map places that may be matched (recent ones excluded in SLAM).

        Temporal exclusion applies within the current mapping session only: the places of a
        loaded map (earlier sessions, ids below ``session_start``) are always eligible, even when
        their stamps overlap this session's (a bag replayed onto the map it built)."""
        n = len(self.place_map)
        if self.config.mode == "localisation" or n == 0:
            return n
        start = min(self.place_map.session_start, n)
        cutoff = n - self.config.exclude_recent_n
        too_recent = self.place_map.stamps[start:] > stamp - self.config.exclude_recent_s
        if too_recent.any():
            cutoff = min(cutoff, start + int(np.argmax(too_recent)))
        return max(start, cutoff)

    def process(
        self,
        descriptor: np.ndarray,
        stamp: float,
        pose: np.ndarray | None = None,
        frame_id: str | None = None,
    ) -> FrameResult:
        """Handle one frame (``pose`` in ``frame_id``, default the map's frame); ValueError
        (state unchanged) on a bad descriptor, stamp or pose."""
        t0 = time.perf_counter()
        d = self._check_descriptor(descriptor)
        stamp = _check_stamp(stamp)
        pose = validate_pose(pose)
        if not self.keyframes.check(stamp, pose):
            return FrameResult(False, None, None, [], (time.perf_counter() - t0) * 1e3)
        self.keyframes.accept(stamp, pose)

        n_elig = self._eligible(stamp)
        if self._use_shortlist(n_elig):
            sims, candidates, seq = self._shortlist_step(d, n_elig)
        else:
            sims = self.place_map.similarities(d)[:n_elig] if n_elig else np.zeros(0, np.float32)
            candidates = self._top_k(sims)
            seq = self.matcher.update(sims) if self.matcher is not None else None
            if self.shortlist is not None:  # keep its history, so a later switch is exact
                wide = self._top_k(sims, self.config.shortlist_candidates)
                ids = np.array([i for i, _ in wide], dtype=np.int64)
                std = float(sims.astype(np.float64).std()) if n_elig else 0.0
                self.shortlist.record(d / np.linalg.norm(d), n_elig, ids, std)
                if seq is not None:
                    self.shortlist.prev_index = seq.index
        if self.seq_window is not None:
            seq, candidates = self._sequence_shortlist(d, sims, seq, candidates)
        frame = frame_id or self.place_map.frame_id
        decision = self._decide(sims, candidates, seq, pose, frame, n_elig) if candidates else None

        place_id = None
        if self.config.mode == "slam":
            place_id = self.place_map.add(d, stamp, pose, frame_id=frame)
            if decision is not None:
                decision.query_id = place_id
        latency = (time.perf_counter() - t0) * 1e3
        return FrameResult(True, place_id, decision, candidates, latency)

    def _use_shortlist(self, n_elig: int) -> bool:
        """Shortlist scoring from now on? (auto switches once, when the map got large)."""
        if self.shortlist is None:
            return False
        if self.config.sequence_search == "shortlist" or self.shortlist_active:
            return True
        self.shortlist_active = n_elig >= self.config.shortlist_min_places
        return self.shortlist_active

    def _shortlist_step(self, d: np.ndarray, n_elig: int):
        """Index search for candidates, sequence scores near them; no O(N) pass over the map."""
        assert self.shortlist is not None
        c = self.config
        k = max(c.top_k, c.shortlist_candidates)
        # The index's own ranking is enough here: the shortlist computes the exact cosines of
        # every candidate (their rows are in its cache), which then rank the reported top_k.
        found = self.place_map.search(
            d, k, exclude_last_n=len(self.place_map) - n_elig, rescore=False
        )
        ids = np.array([i for i, _ in found], dtype=np.int64)
        seq = self.shortlist.update(d / np.linalg.norm(d), n_elig, ids)
        exact = self.shortlist.newest_sims(ids)
        order = np.lexsort((ids, -exact))[: c.top_k]  # best first, ties by lower id
        candidates = [(int(ids[i]), float(exact[i])) for i in order]
        return _SparseSims(self.place_map, d, n_elig), candidates, seq

    def _top_k(self, sims: np.ndarray, top_k: int | None = None) -> list[tuple[int, float]]:
        n = len(sims)
        if n == 0:
            return []
        k = min(self.config.top_k if top_k is None else top_k, n)
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.lexsort((top, -sims[top]))]  # best first, ties by lower id
        return [(int(i), float(sims[i])) for i in top]

    def _decide(
        self,
        sims: np.ndarray,
        candidates: list[tuple[int, float]],
        seq: SequenceResult | None,
        pose: np.ndarray | None,
        frame_id: str,
        n_places: int,
    ) -> LoopClosure:
        c = self.config
        min_conf = c.confidence_threshold(n_places)
        if self.matcher is None:
            match, seq_score, conf, used = candidates[0][0], None, None, 1
        else:
            assert seq is not None  # min_length=1 and a non-empty map always give a result
            match, seq_score, conf, used = seq.index, seq.score, seq.confidence, seq.length_used
        score = float(sims[match])  # exact cosine (a _SparseSims computes it on demand)
        reason = "accepted"
        if self.matcher is not None and used < self.min_sequence_frames:
            reason = f"sequence too short ({used} < {self.min_sequence_frames} keyframes)"
        elif score < c.min_score:
            reason = f"score {score:.3f} < min_score {c.min_score}"
        elif seq_score is not None and seq_score < c.min_sequence_score:
            reason = f"sequence score {seq_score:.3f} < min_sequence_score {c.min_sequence_score}"
        elif conf is not None and conf < min_conf:
            reason = f"confidence {conf:.3f} < min_confidence {min_conf:.3f} ({n_places} places)"
        elif c.max_pose_distance_m is not None and pose is not None:
            place = self.place_map.get(match)
            stored = place.pose
            # Poses in different frames (an odom map, a map-frame session) are not comparable.
            if stored is not None and (not frame_id or place.frame_id == frame_id):
                dist = float(np.linalg.norm(stored[:3] - pose[:3]))
                if dist > c.max_pose_distance_m:
                    reason = f"pose {dist:.2f} m away > max_pose_distance_m {c.max_pose_distance_m}"
        return LoopClosure(
            query_id=None,
            match_id=int(match),
            score=score,
            sequence_score=seq_score,
            confidence=conf,
            sequence_length=used,
            accepted=reason == "accepted",
            reason=reason,
        )

    # -- optional hierarchical search with a sequence encoder (SeqNet) --------------------------
    def _init_sequence_encoder(self, encoder: Any | None, k: int) -> None:
        self.sequence_encoder = encoder
        self.sequence_shortlist_k = int(k)
        self.seq_window = self.seq_index = self.last_shortlist = None
        if encoder is None:
            return
        from .sequence_encoder import FrameWindow, SequenceIndex

        if self.sequence_shortlist_k < 1:
            raise ValueError(f"sequence_shortlist_k must be >= 1, got {k}")
        if int(encoder.frame_dim) != self.place_map.dim:
            raise ValueError(
                f"sequence model {encoder.model_id} takes {encoder.frame_dim}-d frame "
                f"descriptors, the map holds {self.place_map.dim}-d ones"
            )
        encoder.check_frame_model(self.place_map.model_id)
        self.seq_window = FrameWindow(encoder.length)
        self.seq_index = SequenceIndex(encoder.dim)

    def _sync_sequence_index(self) -> None:
        """Index the window of L consecutive places ending at each place not indexed yet."""
        assert self.sequence_encoder is not None and self.seq_index is not None
        n, L = len(self.place_map), self.sequence_encoder.length
        start = max(L - 1, max(self.seq_index.ids, default=L - 2) + 1)
        if n <= start:
            return
        frames = self.place_map.descriptors[start - L + 1 : n]
        self.seq_index.add(np.arange(start, n), self.sequence_encoder.encode_route(frames))

    def _sequence_shortlist(
        self,
        d: np.ndarray,
        sims: np.ndarray,
        seq: SequenceResult | None,
        candidates: list[tuple[int, float]],
    ) -> tuple[SequenceResult | None, list[tuple[int, float]]]:
        from .sequence_encoder import hierarchical_search

        assert self.seq_window is not None and self.sequence_encoder is not None
        window = self.seq_window.push(d)
        n_elig = len(sims)
        if window is None or n_elig == 0:
            return seq, candidates
        self._sync_sequence_index()
        query = self.sequence_encoder.encode(window)
        rerank = seq.scores[:n_elig] if seq is not None else sims
        h = hierarchical_search(
            query, self.seq_index, self.sequence_shortlist_k, rerank, max_id=n_elig
        )
        self.last_shortlist = h
        if h is None:
            return seq, candidates
        if seq is None:
            order = sorted(h.shortlist.tolist(), key=lambda i: (-float(sims[i]), i))
            return seq, [(int(i), float(sims[i])) for i in order[: self.config.top_k]]
        scores = seq.scores
        best = h.index
        assert self.matcher is not None
        excl = self.matcher.exclusion_window
        outside = np.concatenate((scores[: max(0, best - excl)], scores[best + excl + 1 :]))
        score = float(scores[best])
        second = float(outside.max()) if len(outside) else -math.inf
        confidence = score - second if len(outside) else 0.0
        return (
            dataclasses.replace(
                seq, index=best, score=score, second_score=second, confidence=confidence
            ),
            candidates,
        )


class _SparseSims:
    """``sims[i]`` of the shortlist path: the exact cosine of one place, computed on demand."""

    def __init__(self, place_map: PlaceMap, d: np.ndarray, n: int) -> None:
        self._map, self._q, self._n = place_map, d / np.linalg.norm(d), n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> float:
        return float(self._map.descriptor_rows([int(i)])[0] @ self._q)
