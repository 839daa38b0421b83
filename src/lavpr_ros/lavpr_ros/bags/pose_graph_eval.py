"""Pose-graph evaluation on a bag: drift the bag's odometry, close loops with the closures the
core pipeline finds in it, and score the trajectories against the undrifted one with evo.

Drift model (seeded): every odometry step (relative motion between consecutive poses, body
frame) is scaled by ``1 + scale_error`` and its heading gets a random-walk error whose increment
per step has std ``heading_rw_rad * sqrt(step length [m])`` -- the two dominant errors of wheel
odometry (wheel radius calibration, gyro/yaw bias). The drifted trajectory is what the pose graph
sees as odometry; the bag's own poses are the ground truth.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from lavpr_ros.core.pose_graph import (
    PoseGraph,
    PoseGraphConfig,
    PoseGraphError,
    from_pose3,
    to_pose3,
)


@dataclass(frozen=True)
class DriftModel:
    scale_error: float = 0.03
    heading_rw_rad: float = 0.003
    seed: int = 0


def drift(poses: np.ndarray, model: DriftModel) -> np.ndarray:
    """Drifted copy of a (N, 7) trajectory (starts at the same pose), see the module docstring."""
    rng = np.random.default_rng(model.seed)
    out = [np.asarray(poses[0], dtype=np.float64)]
    cur = to_pose3(poses[0])
    for a, b in itertools.pairwise(poses):
        rel = to_pose3(a).between(to_pose3(b))
        step = float(np.linalg.norm(np.asarray(rel.translation())))
        # The heading error accumulates these increments: a random walk.
        d_yaw = rng.normal(0.0, model.heading_rw_rad * math.sqrt(max(step, 1e-9)))
        t = np.asarray(rel.translation()) * (1.0 + model.scale_error)
        r = rel.rotation().compose(_yaw(d_yaw))
        cur = cur.compose(_pose(r, t))
        out.append(from_pose3(cur))
    return np.array(out)


def _yaw(a: float) -> Any:
    import gtsam

    return gtsam.Rot3.Yaw(a)


def _pose(r: Any, t: np.ndarray) -> Any:
    import gtsam

    return gtsam.Pose3(r, gtsam.Point3(t))


def evo_metrics(stamps_ns: list[int], est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """ATE (APE translation, no alignment: both start at the same pose, the map frame must be
    right) and RPE (translation over 1 keyframe) with evo: RMSE and median [m]."""
    from evo.core import metrics
    from evo.core.trajectory import PoseTrajectory3D

    t = np.asarray(stamps_ns, dtype=np.float64) / 1e9

    def traj(p: np.ndarray) -> PoseTrajectory3D:
        q_wxyz = np.column_stack([p[:, 6], p[:, 3], p[:, 4], p[:, 5]])
        return PoseTrajectory3D(positions_xyz=p[:, :3], orientations_quat_wxyz=q_wxyz, timestamps=t)

    e, r = traj(est), traj(ref)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((r, e))
    rpe = metrics.RPE(metrics.PoseRelation.translation_part, delta=1, all_pairs=False)
    rpe.process_data((r, e))
    return {
        "ate_rmse_m": float(ape.get_statistic(metrics.StatisticsType.rmse)),
        "ate_median_m": float(ape.get_statistic(metrics.StatisticsType.median)),
        "rpe_rmse_m": float(rpe.get_statistic(metrics.StatisticsType.rmse)),
        "rpe_median_m": float(rpe.get_statistic(metrics.StatisticsType.median)),
        "_ape_errors": ape.error.tolist(),  # type: ignore[dict-item]
    }


def pose_graph_config(config_file: str | Path | None = None) -> PoseGraphConfig:
    """The pose_graph node's section of the parameter file (default config/lavpr.yaml)."""
    from lavpr_ros.graph.config import dataclass_from_params, node_parameters
    from lavpr_ros.graph.description import default_config_file

    params = node_parameters(config_file or default_config_file(), "pose_graph")
    return dataclass_from_params(PoseGraphConfig, params, "")


def run_graph(
    kf_stamps: list[int],
    odom: np.ndarray,
    closures: list[tuple[int, int]],
    config: PoseGraphConfig,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Keyframes in time order; each closure (query stamp, match stamp) right after its query."""
    g = PoseGraph(config)
    by_query: dict[int, list[int]] = {}
    for q, m in closures:
        by_query.setdefault(q, []).append(m)
    rejected = 0
    for s, p in zip(kf_stamps, odom, strict=True):
        g.add_keyframe(s, s / 1e9, p)
        for m in by_query.get(s, []):
            try:
                g.add_loop(s, m)
            except PoseGraphError:
                rejected += 1
    stats = g.stats()
    stats["closures_refused"] = rejected
    return g.poses(), stats


def evaluate_pose_graph(
    bag: str | Path,
    out_dir: str | Path,
    model: DriftModel | None = None,
    false_closures: int = 10,
    config: PoseGraphConfig | None = None,
    config_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Offline run of the bag (core pipeline: closures), then drifted vs corrected vs
    corrected-with-false-closures. Writes pose_graph_eval.json and PNG plots to ``out_dir``."""
    from lavpr_ros.bags.evaluate import evaluate_bag, load_poses

    model = model or DriftModel()
    config = config or pose_graph_config(config_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = evaluate_bag(bag, config_file=config_file, progress=progress, log=lambda _m: None)
    topic, mtype = res.metrics["pose_topic"], res.metrics["pose_type"]
    if topic is None:
        raise ValueError(f"{bag} has no pose/odometry topic: nothing to drift")
    choice = SimpleNamespace(topic=topic, msgtype=mtype)
    _, _, _, _, buffer = load_poses(res.source, choice)
    kf = [s for s in res.kf_stamps_ns if buffer.lookup(s / 1e9, 0.1) is not None]
    truth = np.array([buffer.lookup(s / 1e9, 0.1) for s in kf])
    odom = drift(truth, model)
    kf_set = set(kf)
    closures = [
        (d.query_stamp_ns, d.match_stamp_ns)
        for d in res.decisions
        if d.accepted and d.query_stamp_ns in kf_set and d.match_stamp_ns in kf_set
    ]
    correct = [d.correct for d in res.decisions if d.accepted]
    rng = np.random.default_rng(model.seed + 1)
    fakes: list[tuple[int, int]] = []
    while len(fakes) < false_closures and len(kf) > 10:
        i, j = sorted(rng.integers(0, len(kf), 2))
        if np.linalg.norm(truth[i, :3] - truth[j, :3]) > 50.0:  # truly different places
            fakes.append((kf[j], kf[i]))
    corrected, stats = run_graph(kf, odom, closures, config)
    noisy, stats_f = run_graph(kf, odom, sorted(closures + fakes), config)
    runs = {
        "drifted": evo_metrics(kf, odom, truth),
        "pose_graph": evo_metrics(kf, corrected, truth),
        "pose_graph_false_closures": evo_metrics(kf, noisy, truth),
    }
    errors = {k: v.pop("_ape_errors") for k, v in runs.items()}
    report = {
        "bag": str(bag),
        "keyframes": len(kf),
        "closures": len(closures),
        "closures_correct": sum(bool(c) for c in correct),
        "closures_without_ground_truth": sum(c is None for c in correct),
        "false_closures_injected": len(fakes),
        "drift_model": model.__dict__,
        "config": {k: v for k, v in config.__dict__.items() if k != "base_T_camera"},
        "runs": runs,
        "graph": stats,
        "graph_false_closures": stats_f,
        "ate_ratio_corrected_to_drifted": runs["pose_graph"]["ate_rmse_m"]
        / max(runs["drifted"]["ate_rmse_m"], 1e-12),
        "ate_ratio_false_to_clean": runs["pose_graph_false_closures"]["ate_rmse_m"]
        / max(runs["pose_graph"]["ate_rmse_m"], 1e-12),
    }
    (out / "pose_graph_eval.json").write_text(json.dumps(report, indent=2))
    _plot(out, kf, truth, odom, corrected, noisy, errors)
    return report


def latched_qos() -> Any:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def score_online_path(
    path_msg: Any, src: Any, pose_choice: Any, drifted: dict[int, np.ndarray], out: Path
) -> dict[str, Any]:
    """ATE/RPE of the pose_graph node's optimised keyframe path (and of the drifted odometry
    it was fed) against the bag's poses at the keyframe stamps; plots next to the JSON."""
    from .evaluate import load_poses

    if path_msg is None or not path_msg.poses:
        return {"error": "no pose_graph/keyframe_path received"}
    _, _, _, _, truth_buf = load_poses(src, pose_choice)
    d_stamps = np.array(sorted(drifted))
    kf, est, ref, odo = [], [], [], []
    for ps in path_msg.poses:
        s = ps.header.stamp.sec * 1_000_000_000 + ps.header.stamp.nanosec
        t = truth_buf.lookup(s / 1e9, 0.1)
        j = int(np.argmin(np.abs(d_stamps - s)))
        if t is None or abs(int(d_stamps[j]) - s) > 100_000_000:
            continue
        p, q = ps.pose.position, ps.pose.orientation
        kf.append(s)
        est.append([p.x, p.y, p.z, q.x, q.y, q.z, q.w])
        ref.append(t)
        odo.append(drifted[int(d_stamps[j])])
    e, r, o = np.array(est), np.array(ref), np.array(odo)
    runs = {"drifted": evo_metrics(kf, o, r), "pose_graph": evo_metrics(kf, e, r)}
    errors = {k: v.pop("_ape_errors") for k, v in runs.items()}
    _plot(out, kf, r, o, e, None, errors)
    res = {"keyframes": len(kf), **runs}
    res["ate_ratio_corrected_to_drifted"] = runs["pose_graph"]["ate_rmse_m"] / max(
        runs["drifted"]["ate_rmse_m"], 1e-12
    )
    (out / "pose_graph_online.json").write_text(json.dumps(res, indent=2))
    return res


def _plot(
    out: Path,
    kf: list[int],
    truth: np.ndarray,
    odom: np.ndarray,
    corrected: np.ndarray,
    noisy: np.ndarray | None,
    errors: dict[str, list[float]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    ax.plot(truth[:, 0], truth[:, 1], "k-", lw=2, label="ground truth")
    ax.plot(odom[:, 0], odom[:, 1], "r--", label="drifted odometry")
    ax.plot(corrected[:, 0], corrected[:, 1], "b-", label="pose graph")
    if noisy is not None:
        ax.plot(noisy[:, 0], noisy[:, 1], "g:", label="pose graph + false closures")
    ax.set(xlabel="x [m]", ylabel="y [m]", title="Keyframe trajectories")
    ax.axis("equal")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pose_graph_trajectories.png", dpi=120)
    plt.close(fig)
    t = (np.asarray(kf) - kf[0]) / 1e9
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, e in errors.items():
        ax.plot(t, e, label=name)
    ax.set(xlabel="time [s]", ylabel="position error [m]", title="ATE over time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pose_graph_error.png", dpi=120)
    plt.close(fig)


def bench(keyframes: int = 2000, loop_every: int = 10, seed: int = 0) -> dict[str, float]:
    """Optimisation time per keyframe on a synthetic drifting route driven twice (second half
    closes to the first every ``loop_every`` keyframes)."""
    import time

    rng = np.random.default_rng(seed)
    half = keyframes // 2
    yaw = np.cumsum(rng.normal(0, 0.05, half))
    xy = np.cumsum(np.column_stack([np.cos(yaw), np.sin(yaw)]) * 2.0, axis=0)
    route = np.array(
        [
            [x, y, 0, 0, 0, math.sin(a / 2), math.cos(a / 2)]
            for (x, y), a in zip(xy, yaw, strict=True)
        ]
    )
    truth = np.vstack([route, route])
    odom = drift(truth, DriftModel(seed=seed))
    g = PoseGraph()
    per_kf = []
    for i, p in enumerate(odom):
        t0 = time.perf_counter()
        g.add_keyframe(i, float(i), p)
        if i >= half and i % loop_every == 0:
            g.add_loop(i, i - half)
        per_kf.append((time.perf_counter() - t0) * 1e3)
    ms = np.asarray(per_kf)
    return {
        "keyframes": float(keyframes),
        "loops": float(len(g.loops)),
        "ms_per_keyframe_p50": float(np.percentile(ms, 50)),
        "ms_per_keyframe_p95": float(np.percentile(ms, 95)),
        "ms_per_keyframe_max": float(ms.max()),
        "ms_last_100_p95": float(np.percentile(ms[-100:], 95)),
    }
