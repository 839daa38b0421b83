"""Offline evaluation of a bag (``lavpr bag eval``): the nodes' pipeline, deterministically.

Per image (in header-stamp order, exact duplicate stamps dropped): decode exactly as vpr_encoder
does (core.images), encode with the same encoder, pair with the pose at the image stamp exactly as
place_map does (PoseBuffer, ``pose_tolerance_s`` of the place_map parameters; no pose -> the
detector's time-based keyframing), and run the core LoopClosureDetector with the place_map's
``loop_closure.*`` parameters from config/lavpr.yaml. Nothing here imports rclpy.

Scoring (shared with the online replay, :func:`score_decisions`): a decision (keyframe -> matched
place) is correct when the true positions of the two image stamps are within ``gt_radius_m``
(true positions from the sidecar ground truth when there is one, else the bag's poses). A keyframe
is a *positive query* when some place that the detector may match (older than the temporal
exclusion, in the map) lies within the radius; recall = correct accepted closures / positive
queries. The PR curve sweeps the varying gate (sequence confidence; single-frame: the cosine) over
every keyframe's best candidate that passed the other gates, so the configured operating point
lies on it; ``auc_pr_all_candidates`` sweeps every best candidate regardless of the other gates.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lavpr_ros.core.metrics import (
    auc_pr,
    latency_percentiles,
    precision_recall_curve,
    recall_at_k,
    recall_at_precision,
)

from .reader import (
    IMAGE_TYPES,
    POSE_TYPES,
    BagReadError,
    BagSource,
    StampStats,
    choose_topic,
    deserialize,
    header_stamp_ns,
    image_from_msg,
    pose_from_msg,
    stamp_ordered,
)
from .writer import GT_FORMAT, sidecar_path

KS = (1, 5, 10)


# -- configuration -------------------------------------------------------------------------------
def load_config(config_file: str | Path | None) -> tuple[Any, dict[str, Any], Path]:
    """(LoopClosureConfig, place_map parameters, file) from the place_map section."""
    from lavpr_ros.core.loop_closure import LoopClosureConfig
    from lavpr_ros.graph.config import dataclass_from_params, node_parameters
    from lavpr_ros.graph.description import default_config_file

    path = Path(config_file) if config_file else default_config_file()
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    params = node_parameters(path, "place_map")
    return dataclass_from_params(LoopClosureConfig, params, "loop_closure."), params, path


def config_encoder(config_file: str | Path | None) -> str:
    """vpr_encoder's ``encoder`` in the parameter file: offline runs use what the robot runs."""
    from lavpr_ros.graph.config import node_parameters
    from lavpr_ros.graph.description import default_config_file

    path = Path(config_file) if config_file else default_config_file()
    return str(node_parameters(path, "vpr_encoder").get("encoder") or "patchnorm")


# -- ground truth ------------------------------------------------------------------------------
@dataclass
class GroundTruth:
    source: str
    radius_m: float
    stamps: np.ndarray  # sorted int64 ns
    xyz: np.ndarray  # (N, 3)
    tolerance_ns: int
    interpolate: bool

    def position(self, stamp_ns: int) -> np.ndarray | None:
        s = self.stamps
        if len(s) == 0:
            return None
        i = int(np.searchsorted(s, stamp_ns))
        if i < len(s) and s[i] == stamp_ns:
            return self.xyz[i]
        lo, hi = i - 1, i
        tol = self.tolerance_ns
        bracketed = self.interpolate and lo >= 0 and hi < len(s)
        if bracketed and stamp_ns - s[lo] <= tol and s[hi] - stamp_ns <= tol:
            w = (stamp_ns - s[lo]) / (s[hi] - s[lo])
            return (1 - w) * self.xyz[lo] + w * self.xyz[hi]
        near = [j for j in (lo, hi) if 0 <= j < len(s) and abs(int(s[j]) - stamp_ns) <= tol]
        best = min(near, key=lambda j: abs(int(s[j]) - stamp_ns), default=None)
        return None if best is None else self.xyz[best]


def find_sidecar(bag: Path) -> Path | None:
    for p in (sidecar_path(bag), bag / "ground_truth.json" if bag.is_dir() else None):
        if p is not None and p.is_file():
            return p
    return None


def load_sidecar(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != GT_FORMAT:
        raise ValueError(f"{path} is not a {GT_FORMAT} file (see `lavpr bag from-images`)")
    return doc


def ground_truth_from_sidecar(doc: dict[str, Any], path: Path, radius: float | None) -> GroundTruth:
    rows = [(int(f["stamp_ns"]), f["xyz"]) for f in doc["frames"] if f.get("xyz") is not None]
    rows.sort()
    r = float(radius if radius is not None else doc.get("gt_radius_m", 3.0))
    return GroundTruth(
        f"sidecar {path}",
        r,
        np.array([s for s, _ in rows], dtype=np.int64),
        np.array([x for _, x in rows], dtype=np.float64).reshape(-1, 3),
        tolerance_ns=1_000_000,
        interpolate=False,
    )


def ground_truth_from_poses(
    stamps: list[int], poses: list[np.ndarray], topic: str, radius: float, tol_s: float
) -> GroundTruth:
    return GroundTruth(
        f"poses on {topic}",
        float(radius),
        np.array(stamps, dtype=np.int64),
        np.array([p[:3] for p in poses], dtype=np.float64).reshape(-1, 3),
        tolerance_ns=round(tol_s * 1e9),
        interpolate=True,
    )


# -- decisions and scoring ---------------------------------------------------------------------
@dataclass
class Decision:
    """One keyframe's best candidate (offline), or one published loop closure (online)."""

    query_stamp_ns: int
    match_stamp_ns: int
    query_id: int
    match_id: int
    score: float
    sequence_score: float | None
    confidence: float | None
    accepted: bool
    reason: str
    latency_ms: float = float("nan")
    candidates: list[int] = field(default_factory=list)
    correct: bool | None = None  # filled by scoring; None = no ground truth for it


def positives_per_keyframe(kf_stamps_ns: list[int], gt: GroundTruth, config: Any) -> list[set[int]]:
    """For keyframe q: the ids of places the detector may match that are true matches."""
    stamps_s = np.array(kf_stamps_ns, dtype=np.int64) / 1e9
    pos = [gt.position(s) for s in kf_stamps_ns]
    have = np.array([p is not None for p in pos])
    xyz = np.array([p if p is not None else (np.nan, np.nan, np.nan) for p in pos], dtype=float)
    out: list[set[int]] = []
    slam = config.mode == "slam"
    for q in range(len(kf_stamps_ns)):
        if not have[q]:
            out.append(set())
            continue
        n = q if slam else len(kf_stamps_ns)
        cutoff = n - config.exclude_recent_n if slam else n
        if slam:
            recent = np.flatnonzero(stamps_s[:q] > stamps_s[q] - config.exclude_recent_s)
            if recent.size:
                cutoff = min(cutoff, int(recent[0]))
        cutoff = max(0, cutoff)
        if cutoff == 0:
            out.append(set())
            continue
        d = np.linalg.norm(xyz[:cutoff] - xyz[q], axis=1)
        out.append({int(j) for j in np.flatnonzero(have[:cutoff] & (d <= gt.radius_m))})
    return out


def _gated(d: Decision, sequences: bool) -> bool:
    """Accepted, or rejected only by the swept gate (so it would pass at a lower threshold)."""
    gate = "confidence" if sequences else "score"
    return d.accepted or d.reason.startswith(gate)


def _sweep_value(d: Decision, sequences: bool) -> float:
    v = d.confidence if sequences and d.confidence is not None else d.score
    return float(v) if v is not None and math.isfinite(v) else -1e9


def score_decisions(
    decisions: list[Decision],
    gt: GroundTruth | None,
    positives: list[set[int]] | None,
    sequences: bool,
    with_candidates: bool,
    top_k: int = max(KS),
    distractors: int = 0,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Precision/recall of the accepted decisions, PR curve, AUC-PR, Recall@K.

    ``distractors``: places ``0..distractors-1`` came from a distractor map (other places): a
    decision matching one of them is false."""
    m: dict[str, Any] = {}
    curve: dict[str, np.ndarray] = {"precision": np.zeros(0), "recall": np.zeros(0)}
    accepted = [d for d in decisions if d.accepted]
    m["loop_closures"] = len(accepted)
    if gt is None:
        m["ground_truth"] = None
        return m, curve
    for d in decisions:
        a, b = gt.position(d.query_stamp_ns), gt.position(d.match_stamp_ns)
        d.correct = None if a is None or b is None else bool(np.linalg.norm(a - b) <= gt.radius_m)
        if d.match_id < distractors:
            d.correct = False
    n_pos = sum(1 for p in positives or [] if p)
    scored_acc = [d for d in accepted if d.correct is not None]
    correct = sum(1 for d in scored_acc if d.correct)
    m.update(
        ground_truth=gt.source,
        gt_radius_m=gt.radius_m,
        positive_queries=n_pos,
        correct=correct,
        false=len(scored_acc) - correct,
        unscored=len(accepted) - len(scored_acc),
        precision=correct / len(scored_acc) if scored_acc else float("nan"),
        recall=correct / n_pos if n_pos else float("nan"),
    )
    m["f1"] = (
        2 * m["precision"] * m["recall"] / (m["precision"] + m["recall"])
        if correct and n_pos
        else 0.0
    )
    scored = [d for d in decisions if d.correct is not None]
    gated = [d for d in scored if _gated(d, sequences)]
    total = max(1, n_pos)
    if gated:
        s = [_sweep_value(d, sequences) for d in gated]
        c = [bool(d.correct) for d in gated]
        p, r, thr = precision_recall_curve(s, c, total)
        curve = {"precision": p, "recall": r, "threshold": thr}
        m["auc_pr"] = auc_pr(s, c, total)
        m["recall_at_100p"] = recall_at_precision(s, c, 1.0, total)
    else:
        m["auc_pr"], m["recall_at_100p"] = 0.0, 0.0
    m["pr_sweep"] = "sequence confidence" if sequences else "single-frame cosine"
    acc_s = [_sweep_value(d, sequences) for d in scored_acc]
    acc_c = [bool(d.correct) for d in scored_acc]
    m["auc_pr_accepted_only"] = auc_pr(acc_s, acc_c, total) if acc_s else 0.0
    if with_candidates:
        m["auc_pr_all_candidates"] = (
            auc_pr([_sweep_value(d, sequences) for d in scored], [d.correct for d in scored], total)
            if scored
            else 0.0
        )
        if positives is not None:
            by_q = {d.query_id: d for d in decisions}
            qs = [q for q, p in enumerate(positives) if p]
            ks = tuple(k for k in KS if k <= max(1, top_k)) or (1,)
            k = max(ks)
            ranked = np.full((len(qs), k), -1, dtype=np.int64)
            for row, q in enumerate(qs):
                cands = by_q[q].candidates[:k] if q in by_q else []
                ranked[row, : len(cands)] = cands
            m.update(recall_at_k(ranked, [positives[q] for q in qs], ks))
    return m, curve


# -- the offline run ---------------------------------------------------------------------------
@dataclass
class OfflineResult:
    metrics: dict[str, Any]
    decisions: list[Decision]
    curve: dict[str, np.ndarray]
    kf_stamps_ns: list[int]
    gt: GroundTruth | None
    image_topic: str
    image_type: str
    source: BagSource
    frame_stamps_ns: list[int] = field(default_factory=list)


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def select_topics(
    src: BagSource,
    image_topic: str | None,
    pose_topic: str | None,
    log: Callable[[str], None] = _log_default,
):
    img = choose_topic(src.topics, IMAGE_TYPES, image_topic, "image")
    if img.topic is None:
        listed = ", ".join(f"{t.name} [{t.msgtype}]" for t in src.topics.values()) or "none"
        raise BagReadError(f"no Image/CompressedImage topic in {src.path}; topics: {listed}")
    log(f"image topic: {img.topic} [{img.msgtype}] ({img.reason})")
    if img.alternatives:
        log(f"  other image topics: {', '.join(img.alternatives)} (choose with --image-topic)")
    pose = choose_topic(src.topics, POSE_TYPES, pose_topic, "pose")
    if pose.topic is None:
        log("pose topic: none (time-based keyframing; no pose ground truth)")
    else:
        log(f"pose topic: {pose.topic} [{pose.msgtype}] ({pose.reason})")
        if pose.alternatives:
            log(f"  other pose topics: {', '.join(pose.alternatives)} (choose with --pose-topic)")
    return img, pose


def read_poses(src: BagSource, topic: str, msgtype: str) -> tuple[list[int], list[np.ndarray], int]:
    """Poses sorted by header stamp (duplicate stamps: last wins), and the duplicate count."""
    by_stamp: dict[int, np.ndarray] = {}
    dup = 0
    for _, _, log_ns, raw in src.messages([topic]):
        stamp = header_stamp_ns(raw) or log_ns
        p = pose_from_msg(deserialize(raw, msgtype), msgtype)
        if stamp in by_stamp:
            dup += 1
        by_stamp[stamp] = p
    stamps = sorted(by_stamp)
    return stamps, [by_stamp[s] for s in stamps], dup


def load_poses(src: BagSource, pose_choice: Any):
    """(stamps, poses, duplicate stamps, bad poses, PoseBuffer of all poses) of the pose topic."""
    from lavpr_ros.core.pose_buffer import PoseBuffer

    buffer = PoseBuffer(max_age_s=math.inf, max_len=1 << 62)
    if pose_choice.topic is None:
        return [], [], 0, 0, buffer
    stamps, poses, dups = read_poses(src, pose_choice.topic, pose_choice.msgtype)
    bad = 0
    for s, p in zip(stamps, poses, strict=True):
        try:
            buffer.add(s / 1e9, p)
        except ValueError:
            bad += 1
    return stamps, poses, dups, bad, buffer


def build_ground_truth(
    bag: Path,
    pose_choice: Any,
    pose_stamps: list[int],
    pose_list: list[np.ndarray],
    gt_file: str | Path | None,
    gt_radius: float | None,
    tol: float,
) -> GroundTruth | None:
    """The sidecar/given ground-truth file, else the bag's poses, else None."""
    side = Path(gt_file) if gt_file else find_sidecar(Path(bag))
    if side is not None:
        return ground_truth_from_sidecar(load_sidecar(side), side, gt_radius)
    if pose_list:
        radius = 3.0 if gt_radius is None else gt_radius
        return ground_truth_from_poses(pose_stamps, pose_list, pose_choice.topic, radius, tol)
    return None


def offline_pipeline(
    config: Any,
    pm_params: dict[str, Any],
    dim: int,
    model_id: str,
    poses: Any,
    use_poses: bool,
    place_map: Any = None,
) -> Any:
    """The place_map node's frame pipeline for an offline run: the encoder's model is known, every
    pose is preloaded, and no clock check applies (stamps are the recording's). ``place_map``: a
    map to start from (default: an empty one)."""
    from lavpr_ros.core.frame_pipeline import FramePipeline, PipelineOptions
    from lavpr_ros.core.place_map import PlaceMap
    from lavpr_ros.core.verification import verifier_from_params

    options = PipelineOptions(
        use_poses=use_poses,
        pose_tolerance_s=float(pm_params.get("pose_tolerance_s", 0.1)),
        pose_wait_s=float(pm_params.get("pose_wait_s", 0.5)),
        pose_startup_wait_s=float(pm_params.get("pose_startup_wait_s", 2.0)),
        time_jump_reset_s=float(pm_params.get("time_jump_reset_s", 1.0)),
        max_clock_skew_s=0.0,
        max_pose_lead_s=0.0,
        expected_model_id=model_id,
    )
    return FramePipeline(
        config,
        options,
        place_map=place_map if place_map is not None else PlaceMap(dim, model_id),
        poses=poses,
        verifier=verifier_from_params(pm_params),
    )


def evaluate_bag(
    bag: str | Path,
    image_topic: str | None = None,
    pose_topic: str | None = None,
    encoder: str | None = None,
    config_file: str | Path | None = None,
    gt_radius: float | None = None,
    gt_file: str | Path | None = None,
    reorder_window: int = 500,
    progress: bool = True,
    log: Callable[[str], None] = _log_default,
    distractor_map: str | Path | None = None,
) -> OfflineResult:
    """The place_map pipeline over a bag, scored. ``distractor_map``: a saved map (same encoder)
    the run starts from, whose places are all *other* places - e.g. the bag's route embedded in
    a city-scale map (docs/scale.md); any match to one of them counts as false."""
    from tqdm import tqdm

    from lavpr_ros.core.encoders import create_encoder
    from lavpr_ros.core.frame_pipeline import REJECTED
    from lavpr_ros.core.images import ImageFormatError

    t_start = time.perf_counter()
    bag = Path(bag)
    config, pm_params, cfg_path = load_config(config_file)
    if config.mode != "slam":
        log(f"note: loop_closure.mode is {config.mode!r} in {cfg_path}; a bag starts an empty map")
    src = BagSource(bag)
    if src.recovered:
        log(f"warning: rosbags could not open {bag} ({src.open_error}); streamed record by record")
    img_choice, pose_choice = select_topics(src, image_topic, pose_topic, log)
    damages = []
    use_poses = pm_params.get("pose_source", "odom") != "none" and pose_choice.topic is not None
    tol = float(pm_params.get("pose_tolerance_s", 0.1))
    pose_stamps, pose_list, pose_dups, bad_poses, buffer = load_poses(src, pose_choice)
    if src.damage:
        damages.append(src.damage)
        log("warning: " + src.damage.describe())
    gt = build_ground_truth(bag, pose_choice, pose_stamps, pose_list, gt_file, gt_radius, tol)
    log(f"ground truth: {gt.source}, radius {gt.radius_m:g} m" if gt else "ground truth: none")

    enc = create_encoder(encoder or config_encoder(config_file))
    prior = None
    if distractor_map is not None:
        prior = _load_distractors(distractor_map, enc, pose_stamps, log)
    n_prior = len(prior) if prior is not None else 0
    pipe = offline_pipeline(config, pm_params, enc.dim, enc.model_id, buffer, use_poses, prior)
    sequences = pipe.detector is not None and pipe.detector.matcher is not None
    stats = StampStats()
    decisions: list[Decision] = []
    kf_stamps: list[int] = []
    frame_stamps: list[int] = []
    lat: dict[str, list[float]] = {
        "decode": [],
        "encode": [],
        "detect": [],
        "features": [],
        "verification": [],
        "total": [],
    }
    counts = {"decode_errors": 0, "rejected": 0, "with_pose": 0, "without_pose": 0}
    total = src.topics[img_choice.topic].count
    raw_iter = ((t, raw) for _, _, t, raw in src.messages([img_choice.topic]))
    bar = tqdm(total=total or None, desc="eval", unit="img", disable=not progress, leave=False)
    for stamp_ns, _, raw in stamp_ordered(raw_iter, max(1, reorder_window), stats):
        bar.update(1)
        t0 = time.perf_counter()
        try:
            img = image_from_msg(deserialize(raw, img_choice.msgtype), img_choice.msgtype)
        except (ImageFormatError, ValueError, KeyError) as exc:
            counts["decode_errors"] += 1
            if counts["decode_errors"] <= 3:
                log(f"warning: image at stamp {stamp_ns} not decodable: {exc}")
            continue
        t1 = time.perf_counter()
        desc = enc.encode([img])[0]
        t2 = time.perf_counter()
        # The same pipeline as place_map; offline every pose is known, so nothing waits.
        recs = pipe.push_descriptor(desc, stamp_ns / 1e9, enc.model_id, arrived=t2, image=img)
        recs += pipe.flush(t2, force=True)
        t3 = time.perf_counter()
        if not recs:
            continue
        rec = recs[-1]
        for note in rec.notes:
            log(f"note: frame at {stamp_ns}: {note}")
        if rec.status == REJECTED:
            counts["rejected"] += 1
            log(f"warning: frame at {stamp_ns} rejected: {rec.reason}")
            continue
        res, pose = rec.result, rec.pose
        assert res is not None
        counts["with_pose" if pose is not None else "without_pose"] += 1
        frame_stamps.append(stamp_ns)
        lat["decode"].append((t1 - t0) * 1e3)
        lat["encode"].append((t2 - t1) * 1e3)
        lat["detect"].append(rec.detect_ms)
        lat["features"].append(rec.features_ms)
        if rec.verification is not None and rec.verification.result is not None:
            lat["verification"].append(rec.verify_ms)
        lat["total"].append((t3 - t0) * 1e3)
        if res.is_keyframe and res.place_id is not None:
            kf_stamps.append(stamp_ns)
        d = res.decision
        if d is not None and res.place_id is not None:
            match_stamp = (
                kf_stamps[d.match_id - n_prior]
                if d.match_id >= n_prior
                else round(float(prior.stamps[d.match_id]) * 1e9)  # type: ignore[union-attr]
            )
            decisions.append(
                Decision(
                    stamp_ns,
                    match_stamp,
                    int(res.place_id),
                    int(d.match_id),
                    float(d.score),
                    d.sequence_score,
                    d.confidence,
                    bool(d.accepted),
                    d.reason,
                    (t3 - t0) * 1e3,
                    [c for c, _ in res.candidates],
                )
            )
    bar.close()
    if src.damage and all(d.file != src.damage.file for d in damages):
        damages.append(src.damage)
        log("warning: " + src.damage.describe())
    positives = positives_per_keyframe(kf_stamps, gt, config) if gt else None
    if positives is not None and n_prior:  # the bag's places come after the distractors
        positives = [{n_prior + j for j in p} for p in positives]
    scores, curve = score_decisions(
        decisions,
        gt,
        positives,
        sequences,
        with_candidates=True,
        top_k=config.top_k,
        distractors=n_prior,
    )
    metrics: dict[str, Any] = {
        "bag": str(bag),
        "storage": src.storage,
        "mode": "offline",
        "image_topic": img_choice.topic,
        "image_type": img_choice.msgtype,
        "other_image_topics": img_choice.alternatives,
        "pose_topic": pose_choice.topic,
        "pose_type": pose_choice.msgtype,
        "encoder": enc.model_id,
        "config_file": str(cfg_path),
        "pose_tolerance_s": tol,
        "frames_read": stats.messages,
        "frames_processed": len(frame_stamps),
        "stamps": stats.as_dict(),
        "poses": len(pose_list),
        "pose_duplicate_stamps": pose_dups,
        "bad_poses": bad_poses,
        "frames_with_pose": counts["with_pose"],
        "frames_without_pose": counts["without_pose"],
        "decode_errors": counts["decode_errors"],
        "detector_rejected": counts["rejected"],
        "keyframes": len(kf_stamps),
        "distractor_places": n_prior,
        "decisions": len(decisions),
        **scores,
        "latency_ms": {k: latency_percentiles(v) for k, v in lat.items()},
        "verification": dict(pipe.verifier.counts) if pipe.verifier is not None else "off",
        "damaged": [d.__dict__ for d in damages],
        "recovered_by_streaming": src.recovered,
        "wall_s": time.perf_counter() - t_start,
    }
    return OfflineResult(
        metrics,
        decisions,
        curve,
        kf_stamps,
        gt,
        img_choice.topic,
        img_choice.msgtype,
        src,
        frame_stamps,
    )


def _load_distractors(
    path: str | Path, enc: Any, pose_stamps: list[int], log: Callable[[str], None]
) -> Any:
    """A saved map of other places, checked against the encoder and stamped before the bag
    (the detector's temporal exclusion and keyframing run on stamps)."""
    from lavpr_ros.core.place_map import PlaceMap

    t = time.perf_counter()
    prior = PlaceMap.load(path, expected_model_id=enc.model_id, expected_dim=enc.dim)
    log(f"distractor map {path}: {len(prior)} places loaded in {time.perf_counter() - t:.1f} s")
    last = float(prior.stamps[-1]) if len(prior) else -np.inf
    if pose_stamps and last * 1e9 >= min(pose_stamps):
        raise ValueError(
            f"distractor map {path}: its places must be stamped before the bag's first pose "
            f"({last:.3f} s >= {min(pose_stamps) / 1e9:.3f} s)"
        )
    return prior


def fetch_images(
    src: BagSource, topic: str, msgtype: str, stamps: set[int]
) -> dict[int, np.ndarray]:
    """Decoded images of the given header stamps (one more pass over the image topic)."""
    out: dict[int, np.ndarray] = {}
    if not stamps:
        return out
    for _, _, log_ns, raw in src.messages([topic]):
        s = header_stamp_ns(raw) or log_ns
        if s in stamps and s not in out:
            try:
                out[s] = image_from_msg(deserialize(raw, msgtype), msgtype)
            except ValueError:
                continue
            if len(out) == len(stamps):
                break
    return out
