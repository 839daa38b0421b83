"""Pose graph over keyframes (GTSAM iSAM2): odometry chains them, loop closures correct drift.

Keyframes are keyed by an integer the caller chooses (the nodes use the keyframe image stamp in
ns, which both ``vpr/keyframe_path`` and ``LoopClosure`` carry, so no place-id bookkeeping is
needed). Variables are robot base poses in the ``map`` frame; the first keyframe is anchored at its
odometry pose, so before any closure ``map == odom``.

Three kinds of loop factor, all wrapped in a robust kernel (Cauchy by default, see
``PoseGraphConfig.robust_kernel``) so that one false closure is down-weighted instead of bending
the whole map:

- ``metric``: a full relative pose (PnP with depth) -> ``BetweenFactorPose3`` with the
  message's covariance (camera optical frame -> base frame through the adjoint of
  ``base_T_camera``).
- ``direction``: rotation + unit translation (monocular essential matrix, scale unobservable)
  -> a rotation-only between factor plus a bearing factor on the direction from the matched
  keyframe to the query keyframe. The bearing constrains what the essential matrix observes and
  nothing else: a metric prior with a guessed scale would pull keyframes to a wrong distance.
- ``same_place``: no transform (sequence-matched VPR closure) -> the two keyframe positions
  coincide within ``same_place_sigma_m`` (the place-recognition radius), rotation free: a
  sequence match says "same place", not "same heading".
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gtsam
import numpy as np

from .poses import validate_pose

FORMAT = "lavpr-pose-graph"
VERSION = 1
LOOP_KINDS = ("metric", "direction", "same_place")
KERNELS = ("cauchy", "huber", "dcs", "geman_mcclure", "none")
# Optical frame (x right, y down, z forward) of a camera looking along base x (REP-103).
OPTICAL_IN_BASE = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)
# Prior of the first keyframe of a later session (its odometry frame is unknown) [m, rad].
SESSION_XYZ, SESSION_ROT = 100.0, 1.0


class PoseGraphError(ValueError):
    """Input the graph refuses; the message is the reason (the graph is unchanged)."""


@dataclass(frozen=True)
class PoseGraphConfig:
    """Noise models and solver settings (ROS parameters ``pose_graph`` node, same names)."""

    # Odometry between consecutive keyframes: sigma = base + per_m * step length.
    odom_sigma_xyz_m: float = 0.02
    odom_sigma_xyz_per_m: float = 0.05
    odom_sigma_rot_rad: float = 0.005
    odom_sigma_rot_per_m: float = 0.01
    # "Same place" closures (no transform): std of the position difference [m].
    same_place_sigma_m: float = 2.0
    # Direction closures: bearing std [rad] and rotation std [rad] when no covariance is given.
    bearing_sigma_rad: float = 0.05
    loop_rot_sigma_rad: float = 0.05
    # Robust kernel of every loop factor and its threshold in sigmas.
    robust_kernel: str = "cauchy"
    robust_k: float = 2.0
    # Loop factors whose robust weight falls below this count as rejected (diagnostics).
    outlier_weight: float = 0.1
    # Extra iSAM2 iterations after a loop factor (Gauss-Newton steps; odometry needs none).
    loop_iterations: int = 3
    relinearize_threshold: float = 0.01
    # iSAM2 checks relinearization only from the root down and stops at cliques whose variables
    # moved less than the threshold (enablePartialRelinearizationCheck). A closure moves the
    # variables near the root most; the full check walks all N variables and, after a long
    # closure, relinearizes deep chain variables that barely moved, which re-eliminates the
    # Bayes tree from there to the root (the p95 latency; docs/pose_graph.md, benchmark).
    partial_relinearization: bool = True
    # Camera optical frame in the base frame (x, y, z, qx, qy, qz, qw) for transform closures.
    base_T_camera: tuple[float, ...] = OPTICAL_IN_BASE

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"pose graph {f.name} must be finite and >= 0, got {v}")
        for name in ("same_place_sigma_m", "bearing_sigma_rad", "loop_rot_sigma_rad", "robust_k"):
            if getattr(self, name) <= 0:
                raise ValueError(f"pose graph {name} must be > 0")
        if self.odom_sigma_xyz_m <= 0 or self.odom_sigma_rot_rad <= 0:
            raise ValueError("pose graph odom_sigma_xyz_m and odom_sigma_rot_rad must be > 0")
        if self.robust_kernel not in KERNELS:
            raise ValueError(f"robust_kernel must be one of {KERNELS}, not {self.robust_kernel!r}")
        validate_pose(self.base_T_camera)


@dataclass
class LoopRecord:
    """One accepted loop factor, as saved (measurement in the base frame)."""

    query: int
    match: int
    kind: str
    measurement: list[float]  # metric/direction: (x, y, z, qx, qy, qz, qw) T_match_query
    covariance: list[float]  # 36 (metric: (rot, trans) order, base frame), else empty
    after: int  # number of keyframes when it was added (replay order on load)
    slot: int = -1  # first factor index in the graph (not saved)
    weight: float = field(default=1.0)


def to_pose3(p: Any) -> gtsam.Pose3:
    a = np.asarray(p, dtype=np.float64)
    return gtsam.Pose3(gtsam.Rot3.Quaternion(a[6], a[3], a[4], a[5]), gtsam.Point3(a[:3]))


def from_pose3(p: gtsam.Pose3) -> np.ndarray:
    q = p.rotation().toQuaternion()
    return np.array([*np.asarray(p.translation()), q.x(), q.y(), q.z(), q.w()])


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def _position_error(this: gtsam.CustomFactor, values: gtsam.Values, H: Any) -> np.ndarray:
    """t_q - t_m in the map frame (isotropic noise, so the frame does not matter)."""
    pm, pq = values.atPose3(this.keys()[0]), values.atPose3(this.keys()[1])
    if H is not None:
        H[0] = np.hstack([np.zeros((3, 3)), -pm.rotation().matrix()])
        H[1] = np.hstack([np.zeros((3, 3)), pq.rotation().matrix()])
    return np.asarray(pq.translation()) - np.asarray(pm.translation())


def _bearing_factor(measured: np.ndarray, noise: gtsam.noiseModel.Base) -> Any:
    def error(this: gtsam.CustomFactor, values: gtsam.Values, H: Any) -> np.ndarray:
        pm, pq = values.atPose3(this.keys()[0]), values.atPose3(this.keys()[1])
        rm = pm.rotation().matrix()
        w = rm.T @ (np.asarray(pq.translation()) - np.asarray(pm.translation()))
        n = max(float(np.linalg.norm(w)), 1e-9)
        u = w / n
        if H is not None:
            du = (np.eye(3) - np.outer(u, u)) / n
            H[0] = du @ np.hstack([_skew(w), -np.eye(3)])
            H[1] = du @ np.hstack([np.zeros((3, 3)), rm.T @ pq.rotation().matrix()])
        return u - measured

    return error


def _covariance(c: Any, what: str) -> np.ndarray:
    """(6,6) symmetric positive-definite covariance or PoseGraphError."""
    a = np.asarray(c, dtype=np.float64)
    if a.size != 36:
        raise PoseGraphError(f"{what} covariance must have 36 entries, got {a.size}")
    a = a.reshape(6, 6)
    if not np.isfinite(a).all():
        raise PoseGraphError(f"{what} covariance has NaN/inf entries")
    if not np.allclose(a, a.T, rtol=1e-6, atol=1e-12):
        raise PoseGraphError(f"{what} covariance is not symmetric")
    eig = np.linalg.eigvalsh(a)
    if eig[0] <= 1e-12 * max(1.0, eig[-1]) or eig[0] <= 0:
        raise PoseGraphError(f"{what} covariance is degenerate (smallest eigenvalue {eig[0]:.3g})")
    return a


class PoseGraph:
    """Keyframe pose graph with incremental optimisation (see the module docstring)."""

    def __init__(self, config: PoseGraphConfig | None = None) -> None:
        self.config = config or PoseGraphConfig()
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(self.config.relinearize_threshold)
        params.enablePartialRelinearizationCheck = bool(self.config.partial_relinearization)
        # QR, not Cholesky: long odometry chains far from the origin make the normal equations
        # ill-conditioned (IndeterminateLinearSystem after ~700 keyframes on a 2 km route).
        params.setFactorization("QR")
        self.isam = gtsam.ISAM2(params)
        self.keys: list[int] = []  # caller keys in insertion order
        self.index: dict[int, int] = {}  # caller key -> variable index
        self.stamps: list[float] = []
        self.place_ids: list[int] = []  # -1 = unknown
        self.odom: list[np.ndarray] = []  # odometry poses (7,) of the keyframes
        self.loops: list[LoopRecord] = []
        self.session_starts: list[int] = [0]  # first keyframe index of each session
        self._new_session = False
        self.n_factors = 0
        self._estimate: gtsam.Values | None = gtsam.Values()
        self._init_from: gtsam.Values | None = None  # initial values while loading
        self.optimise_ms: list[float] = []
        self._b = to_pose3(self.config.base_T_camera)

    # -- construction --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def start_session(self) -> None:
        """The next keyframe starts a new odometry session (after loading a saved graph): no
        odometry factor to the previous keyframe, a loose prior instead, and its stamps may
        restart. Closures to earlier sessions' keyframes then place it in the map."""
        if self.keys:
            self._new_session = True

    @property
    def session_pending(self) -> bool:
        """True until the first keyframe of a started session arrives."""
        return self._new_session

    def has(self, key: int) -> bool:
        return int(key) in self.index

    def add_keyframe(self, key: int, stamp: float, odom_pose: Any, place_id: int = -1) -> bool:
        """Add a keyframe at its odometry pose; False when the key is known already (the
        keyframe path is re-published whole). Odometry factor to the previous keyframe."""
        key = int(key)
        if key in self.index:
            return False
        try:
            pose = validate_pose(odom_pose)
        except ValueError as exc:
            raise PoseGraphError(f"keyframe {key}: {exc}") from None
        if pose is None:
            raise PoseGraphError(f"keyframe {key} has no pose")
        if not math.isfinite(stamp):
            raise PoseGraphError(f"keyframe {key}: stamp {stamp} is not finite")
        if self.stamps and not self._new_session and stamp <= self.stamps[-1]:
            raise PoseGraphError(
                f"keyframe {key} at {stamp:.3f} s is not after the last keyframe "
                f"({self.stamps[-1]:.3f} s): keyframes must arrive in time order"
            )
        self._insert(key, stamp, pose, place_id)
        self._update(iterations=0)
        return True

    def _insert(self, key: int, stamp: float, pose: np.ndarray, place_id: int) -> None:
        i = len(self.keys)
        graph, init = gtsam.NonlinearFactorGraph(), gtsam.Values()
        p = to_pose3(pose)
        if i == 0:
            # Anchor: tight, but not so tight that long chains become ill-conditioned.
            noise = gtsam.noiseModel.Isotropic.Sigma(6, 1e-3)
            graph.add(gtsam.PriorFactorPose3(i, p, noise))
            init.insert(i, p)
        elif self._new_session:
            # A new session's odometry frame is unrelated to the graph's: a loose prior keeps
            # the system determinate until closures to the loaded places anchor it.
            noise = gtsam.noiseModel.Diagonal.Sigmas(
                np.array(
                    [SESSION_ROT, SESSION_ROT, SESSION_ROT, SESSION_XYZ, SESSION_XYZ, SESSION_XYZ]
                )
            )
            graph.add(gtsam.PriorFactorPose3(i, p, noise))
            init.insert(i, p)
            self.session_starts.append(i)
            self._new_session = False
        else:
            prev_odom = to_pose3(self.odom[-1])
            rel = prev_odom.between(p)
            graph.add(gtsam.BetweenFactorPose3(i - 1, i, rel, self._odom_noise(rel)))
            prev_est = (
                self._init_from.atPose3(i - 1)
                if self._init_from is not None
                else self.isam.calculateEstimatePose3(i - 1)
            )
            init.insert(i, prev_est.compose(rel))
        self.keys.append(key)
        self.index[key] = i
        self.stamps.append(float(stamp))
        self.place_ids.append(int(place_id))
        self.odom.append(pose)
        self._pending = (graph, init)

    def _odom_noise(self, rel: gtsam.Pose3) -> gtsam.noiseModel.Base:
        c = self.config
        step = float(np.linalg.norm(np.asarray(rel.translation())))
        st = c.odom_sigma_xyz_m + c.odom_sigma_xyz_per_m * step
        sr = c.odom_sigma_rot_rad + c.odom_sigma_rot_per_m * step
        return gtsam.noiseModel.Diagonal.Sigmas(np.array([sr, sr, sr, st, st, st]))

    def _robust(self, base: gtsam.noiseModel.Base) -> gtsam.noiseModel.Base:
        c, m = self.config, gtsam.noiseModel.mEstimator
        k = c.robust_k
        kernel = {
            "cauchy": lambda: m.Cauchy.Create(k),
            "huber": lambda: m.Huber.Create(k),
            "dcs": lambda: m.DCS.Create(k),
            "geman_mcclure": lambda: m.GemanMcClure.Create(k),
            "none": lambda: None,
        }[c.robust_kernel]()
        return base if kernel is None else gtsam.noiseModel.Robust.Create(kernel, base)

    def add_loop(
        self,
        query: int,
        match: int,
        transform: Any = None,
        covariance: Any = None,
        metric_scale: bool = False,
    ) -> LoopRecord:
        """Add a loop closure between two known keyframes. ``transform`` is T_match_query in
        the camera optical frames (x, y, z, qx, qy, qz, qw) or None for a "same place" closure;
        with ``metric_scale`` false its translation is a direction. ``covariance``: 36 values,
        (x, y, z, rx, ry, rz) row-major, or None/all zero (then the configured sigmas)."""
        if not self.keys:
            raise PoseGraphError("loop closure before any odometry keyframe")
        for what, k in (("query", query), ("match", match)):
            if int(k) not in self.index:
                raise PoseGraphError(f"loop closure {what} keyframe {k} is unknown to the graph")
        query, match = int(query), int(match)
        if query == match:
            raise PoseGraphError(f"loop closure of keyframe {query} with itself")
        rec = self._loop_record(query, match, transform, covariance, metric_scale)
        graph = self._loop_factors(rec)
        rec.slot = self.n_factors
        self._pending = (graph, gtsam.Values())
        self.loops.append(rec)
        self._update(iterations=self.config.loop_iterations)
        return rec

    def _loop_record(
        self, query: int, match: int, transform: Any, covariance: Any, metric_scale: bool
    ) -> LoopRecord:
        after = len(self.keys)
        if transform is None:
            return LoopRecord(query, match, "same_place", [], [], after)
        try:
            t = validate_pose(transform)
        except ValueError as exc:
            raise PoseGraphError(f"loop closure transform: {exc}") from None
        assert t is not None
        cov = None
        if covariance is not None and np.any(np.asarray(covariance, dtype=np.float64) != 0):
            cov = _covariance(covariance, "loop closure")
        elif covariance is not None and not np.isfinite(np.asarray(covariance, float)).all():
            raise PoseGraphError("loop closure covariance has NaN/inf entries")
        if metric_scale and cov is None:
            raise PoseGraphError("metric loop closure without a covariance")
        tb = self._b.compose(to_pose3(t)).compose(self._b.inverse())
        if metric_scale:
            assert cov is not None
            # (x, y, z, rx, ry, rz) -> GTSAM tangent order (rx, ry, rz, x, y, z), then the
            # optical-frame perturbation mapped to the base frame by the adjoint of base_T_camera.
            perm = [3, 4, 5, 0, 1, 2]
            c6 = cov[np.ix_(perm, perm)]
            ad = self._b.AdjointMap()
            cb = ad @ c6 @ ad.T
            return LoopRecord(query, match, "metric", from_pose3(tb).tolist(), _flat(cb), after)
        d = np.asarray(t[:3])
        if np.linalg.norm(d) < 1e-9:
            raise PoseGraphError("direction loop closure with a zero translation direction")
        cb = []
        if cov is not None:
            ad = self._b.AdjointMap()
            perm = [3, 4, 5, 0, 1, 2]
            cb = _flat(ad @ cov[np.ix_(perm, perm)] @ ad.T)
        return LoopRecord(query, match, "direction", from_pose3(tb).tolist(), cb, after)

    def _loop_factors(self, rec: LoopRecord) -> gtsam.NonlinearFactorGraph:
        c = self.config
        m, q = self.index[rec.match], self.index[rec.query]
        graph = gtsam.NonlinearFactorGraph()
        if rec.kind == "same_place":
            noise = self._robust(gtsam.noiseModel.Isotropic.Sigma(3, c.same_place_sigma_m))
            graph.add(gtsam.CustomFactor(noise, [m, q], _position_error))
        elif rec.kind == "metric":
            cov = np.asarray(rec.covariance).reshape(6, 6)
            noise = self._robust(gtsam.noiseModel.Gaussian.Covariance(cov))
            graph.add(gtsam.BetweenFactorPose3(m, q, to_pose3(rec.measurement), noise))
        else:
            tb = to_pose3(rec.measurement)
            sr = c.loop_rot_sigma_rad
            if rec.covariance:
                cov = np.asarray(rec.covariance).reshape(6, 6)
                sr = float(math.sqrt(max(np.linalg.eigvalsh(cov[:3, :3])[-1], 1e-12)))
            # Rotation only: translation sigma so large that the Pose3 between's translation
            # residual carries no weight.
            rot_noise = gtsam.noiseModel.Diagonal.Sigmas(np.array([sr, sr, sr, 1e4, 1e4, 1e4]))
            rot_only = gtsam.Pose3(tb.rotation(), gtsam.Point3(0, 0, 0))
            graph.add(gtsam.BetweenFactorPose3(m, q, rot_only, self._robust(rot_noise)))
            d = np.asarray(tb.translation())
            d = d / np.linalg.norm(d)
            b_noise = self._robust(gtsam.noiseModel.Isotropic.Sigma(3, c.bearing_sigma_rad))
            graph.add(gtsam.CustomFactor(b_noise, [m, q], _bearing_factor(d, b_noise)))
        return graph

    def _update(self, iterations: int) -> None:
        graph, init = self._pending
        t0 = time.perf_counter()
        self.isam.update(graph, init)
        for _ in range(iterations):
            self.isam.update()
        self._estimate = None  # computed when asked for (a full estimate costs O(N))
        self.optimise_ms.append((time.perf_counter() - t0) * 1e3)
        self.n_factors += graph.size()

    # -- results -------------------------------------------------------------------------------
    @property
    def estimate(self) -> gtsam.Values:
        if self._estimate is None:
            self._estimate = self.isam.calculateEstimate()
        return self._estimate

    def pose(self, key: int) -> np.ndarray:
        """Optimised pose (7,) of a keyframe in the map frame."""
        return from_pose3(self.estimate.atPose3(self.index[int(key)]))

    def poses(self) -> np.ndarray:
        """(N, 7) optimised keyframe poses in insertion order."""
        return np.array([from_pose3(self.estimate.atPose3(i)) for i in range(len(self.keys))])

    def map_T_odom(self) -> np.ndarray:
        """map -> odom correction from the newest keyframe: T_map_kf * inv(T_odom_kf)."""
        if not self.keys:
            return np.array([0, 0, 0, 0, 0, 0, 1.0])
        i = len(self.keys) - 1
        t = self.isam.calculateEstimatePose3(i).compose(to_pose3(self.odom[i]).inverse())
        return from_pose3(t)

    def correct(self, odom_pose: Any) -> np.ndarray:
        """An odometry pose expressed in the map frame."""
        return from_pose3(to_pose3(self.map_T_odom()).compose(to_pose3(odom_pose)))

    def loop_weights(self) -> list[float]:
        """Robust weight of each loop factor at the current estimate (1 = fully trusted)."""
        graph = self.isam.getFactorsUnsafe()
        out = []
        for rec in self.loops:
            w = 1.0
            kinds = 1 if rec.kind != "direction" else 2
            for j in range(rec.slot, rec.slot + kinds):
                f = graph.at(j)
                noise = f.noiseModel()
                if isinstance(noise, gtsam.noiseModel.Robust):
                    e = f.unwhitenedError(self.estimate)
                    d = math.sqrt(max(noise.noise().squaredMahalanobisDistance(e), 0.0))
                    w = min(w, float(noise.robust().weight(d)))
            rec.weight = w
            out.append(w)
        return out

    def stats(self) -> dict[str, Any]:
        weights = self.loop_weights()
        kinds = {k: sum(r.kind == k for r in self.loops) for k in LOOP_KINDS}
        ms = np.asarray(self.optimise_ms or [0.0])
        return {
            "keyframes": len(self.keys),
            "factors": self.n_factors,
            "odometry_factors": max(0, len(self.keys) - 1),
            "loop_factors": len(self.loops),
            **{f"loops_{k}": v for k, v in kinds.items()},
            "loops_rejected": sum(w < self.config.outlier_weight for w in weights),
            "optimise_ms_last": float(ms[-1]),
            "optimise_ms_p95": float(np.percentile(ms, 95)),
        }

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        loops = [
            {k: v for k, v in asdict(r).items() if k not in ("slot", "weight")} for r in self.loops
        ]
        cfg = asdict(self.config)
        cfg["base_T_camera"] = list(cfg["base_T_camera"])
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": cfg,
            "keyframes": [
                {"key": k, "stamp": s, "place_id": p, "odom": o.tolist(), "pose": e.tolist()}
                for k, s, p, o, e in zip(
                    self.keys, self.stamps, self.place_ids, self.odom, self.poses(), strict=True
                )
            ],
            "loops": loops,
            "session_starts": self.session_starts,
        }

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically: temp file, fsync, rename (a crash leaves the old file)."""
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".part")
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final

    @classmethod
    def load(cls, path: str | Path, config: PoseGraphConfig | None = None) -> PoseGraph:
        """Rebuild a saved graph (its factors, started from the saved optimised poses). The
        saved noise configuration is used unless ``config`` is given."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PoseGraphError(f"cannot read pose graph {path}: {exc}") from None
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise PoseGraphError(f"{path} is not a {FORMAT} v{VERSION} file")
        if config is None:
            cfg = dict(doc["config"])
            cfg["base_T_camera"] = tuple(cfg["base_T_camera"])
            config = PoseGraphConfig(**cfg)
        g = cls(config)
        loops = [LoopRecord(**r) for r in doc["loops"]]
        graph, init = gtsam.NonlinearFactorGraph(), gtsam.Values()
        li = 0
        starts = set(doc.get("session_starts", [0]))
        for kf in doc["keyframes"]:
            g._new_session = len(g.keys) in starts and len(g.keys) > 0
            g._init_from = init  # _insert composes the initial guess from the previous pose
            g._insert(int(kf["key"]), float(kf["stamp"]), validate_pose(kf["odom"]), kf["place_id"])
            pg, _ = g._pending
            graph.push_back(pg)
            init.insert(len(g.keys) - 1, to_pose3(kf["pose"]))
            while li < len(loops) and loops[li].after == len(g.keys):
                loops[li].slot = graph.size()
                graph.push_back(g._loop_factors(loops[li]))
                g.loops.append(loops[li])
                li += 1
        if li != len(loops):
            raise PoseGraphError(f"{path}: {len(loops) - li} loop closures refer to no keyframe")
        g._pending = (graph, init)
        g._init_from = None
        g.n_factors = 0
        g._update(iterations=g.config.loop_iterations if loops else 0)
        g.optimise_ms.clear()
        return g


def _flat(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a).reshape(-1)]


def relative_errors(estimate: Sequence[Any], truth: Sequence[Any]) -> np.ndarray:
    """Position errors [m] of estimated keyframe poses against the true ones (same order)."""
    e = np.asarray(estimate, dtype=np.float64)[:, :3]
    t = np.asarray(truth, dtype=np.float64)[:, :3]
    return np.linalg.norm(e - t, axis=1)
