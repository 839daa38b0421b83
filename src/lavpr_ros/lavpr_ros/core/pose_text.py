"""Pose-text scoring (the SPARTAN idea): a window of camera poses and an instruction, one space.

A trajectory window is turned into relative-motion features (:func:`pose_window_features`, the
*same function* the trainer uses), embedded by the ONNX pose branch, and compared (cosine) with
the instruction embedded by the frozen sentence encoder (all-MiniLM-L6-v2, the runtime's
:class:`~lavpr_ros.core.text_encoder.TextEncoder`) followed by the trained text projection head.

Model folder (manifest kind ``pose_text``): ``file`` = the pose branch ONNX (input ``poses``
(B, steps, features) -> ``embeddings`` (B, output_dim)); ``extra``: ``text_head`` (ONNX file,
``text`` (B, text_dim) -> ``embeddings`` (B, output_dim)), ``text_head_sha256``, ``text_model``
(model id of the frozen sentence encoder whose embeddings the head takes), ``text_dim``,
``window_s``, ``steps``, ``speed_scale``, ``yaw_rate_scale``, ``stop_speed``.

Features per step (``steps`` samples evenly spaced over the ``window_s`` seconds ending at the
window's end; poses linearly interpolated, yaw unwrapped first):
speed / speed_scale, yaw rate / yaw_rate_scale (left = positive, ROS convention), cos and sin of
the heading relative to the window's *end* heading, stopped (speed < stop_speed), valid (1 where
the recorded trajectory covers the sample; before its start, the first pose is held and valid=0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .manifest import (
    ManifestError,
    ModelChecksumError,
    ModelManifest,
    ModelNotFoundError,
    _inside,
    sha256_file,
)
from .onnx_model import OnnxModel, as_manifest, open_session

FEATURES = ("speed", "yaw_rate", "cos_heading", "sin_heading", "stopped", "valid")


@dataclass(frozen=True)
class PoseFeatureConfig:
    window_s: float = 40.0
    steps: int = 40
    speed_scale: float = 2.0  # m/s
    yaw_rate_scale: float = 0.5  # rad/s
    stop_speed: float = 0.15  # m/s

    @classmethod
    def from_extra(cls, extra: dict) -> PoseFeatureConfig:
        keys = ("window_s", "steps", "speed_scale", "yaw_rate_scale", "stop_speed")
        kw = {k: extra[k] for k in keys if k in extra}
        if "steps" in kw:
            kw["steps"] = int(kw["steps"])
        return cls(**{k: (v if k == "steps" else float(v)) for k, v in kw.items()})


def yaw_from_quaternion(q: np.ndarray) -> np.ndarray:
    """Yaw (rad) of (..., 4) quaternions qx qy qz qw."""
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def planar_poses(poses: np.ndarray) -> np.ndarray:
    """(T, 3) x, y, yaw from (T, 3) x y yaw or (T, 7) x y z qx qy qz qw."""
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] not in (3, 7):
        raise ValueError(f"poses must be (T, 3) x,y,yaw or (T, 7) x,y,z,qx,qy,qz,qw; got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("poses contain NaN/inf")
    if p.shape[1] == 3:
        return p.copy()
    return np.stack([p[:, 0], p[:, 1], yaw_from_quaternion(p[:, 3:7])], axis=1)


def pose_window_features(
    stamps: np.ndarray,
    poses: np.ndarray,
    end: float | None = None,
    cfg: PoseFeatureConfig = PoseFeatureConfig(),
) -> np.ndarray:
    """(steps, 6) float32 features of the ``cfg.window_s`` seconds ending at ``end`` (default: the
    last stamp). ``stamps`` (T,) increasing seconds; ``poses`` (T, 3) or (T, 7)."""
    t = np.asarray(stamps, dtype=np.float64).reshape(-1)
    xy_yaw = planar_poses(poses)
    if len(t) != len(xy_yaw) or len(t) == 0:
        raise ValueError(f"{len(t)} stamps for {len(xy_yaw)} poses")
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("stamps must be strictly increasing")
    end = float(t[-1]) if end is None else float(end)
    n = int(cfg.steps)
    dt = cfg.window_s / n
    # n + 1 sample times; step i covers [ts[i], ts[i + 1]]
    ts = end - cfg.window_s + dt * np.arange(n + 1)
    yaw = np.unwrap(xy_yaw[:, 2])
    x = np.interp(ts, t, xy_yaw[:, 0])
    y = np.interp(ts, t, xy_yaw[:, 1])
    h = np.interp(ts, t, yaw)
    speed = np.hypot(np.diff(x), np.diff(y)) / dt
    yaw_rate = np.diff(h) / dt
    mid_h = 0.5 * (h[1:] + h[:-1]) - h[-1]
    valid = ((ts[1:] > t[0] + 1e-9) & (ts[:-1] < t[-1] + 1e-9)).astype(np.float64)
    feats = np.stack(
        [
            speed / cfg.speed_scale,
            yaw_rate / cfg.yaw_rate_scale,
            np.cos(mid_h),
            np.sin(mid_h),
            (speed < cfg.stop_speed).astype(np.float64) * valid,
            valid,
        ],
        axis=1,
    )
    return feats.astype(np.float32)


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class PoseTextModel(OnnxModel):
    """Pose branch + text projection head (ONNX); text embeddings come from ``text_encoder``
    (a :class:`TextEncoder` of the model named by ``extra.text_model``), or are passed in."""

    kind = "pose_text"
    default_providers = ("CPUExecutionProvider",)

    def __init__(
        self,
        manifest: str | Path | ModelManifest,
        text_encoder=None,
        providers: Sequence[str] | None = None,
    ) -> None:
        m = as_manifest(manifest)
        if m.kind == self.kind:  # the head is checked before the models are loaded
            head = m.extra.get("text_head")
            if not head:
                raise ManifestError(f"manifest of '{m.model_id}' names no extra.text_head file")
            head_path = _inside(Path(m.directory), str(head), "extra.text_head")
            if not head_path.is_file():
                raise ModelNotFoundError(f"text head of '{m.model_id}' not found: {head_path}")
            want = str(m.extra.get("text_head_sha256", "")).lower()
            if want and sha256_file(head_path) != want:
                raise ModelChecksumError(
                    f"text head {head_path} does not match its manifest ('{m.model_id}')"
                )
        super().__init__(m, providers, intra_op_threads=1)
        self.pose_session = self.session
        self.text_session = open_session(
            head_path, m.model_id, providers, self.default_providers, intra_op_threads=1
        )
        self.features = PoseFeatureConfig.from_extra(m.extra)
        self.text_model = str(m.extra.get("text_model", ""))
        self.text_dim = int(m.extra.get("text_dim", 384))
        self.text_encoder = text_encoder
        if text_encoder is not None:
            self.check_text_encoder(text_encoder)

    def check_text_encoder(self, enc) -> None:
        if self.text_model and enc.model_id != self.text_model:
            raise ValueError(
                f"pose-text model {self.model_id} was trained on '{self.text_model}' text "
                f"embeddings, not '{enc.model_id}'"
            )
        if int(enc.dim) != self.text_dim:
            raise ValueError(f"text encoder dim {enc.dim} != {self.text_dim}")

    def window_features(self, stamps, poses, ends: Sequence[float]) -> np.ndarray:
        return np.stack([pose_window_features(stamps, poses, e, self.features) for e in ends])

    def encode_poses(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, dtype=np.float32)
        want = (self.features.steps, len(FEATURES))
        if f.ndim != 3 or f.shape[1:] != want:
            raise ValueError(f"pose features must be (B, {want[0]}, {want[1]}), got {f.shape}")
        if len(f) == 0:
            return np.zeros((0, self.dim), np.float32)
        return _l2(self.pose_session.run(None, {"poses": f})[0])

    def project_text(self, text_embeddings: np.ndarray) -> np.ndarray:
        e = np.asarray(text_embeddings, dtype=np.float32).reshape(-1, self.text_dim)
        if len(e) == 0:
            return np.zeros((0, self.dim), np.float32)
        return _l2(self.text_session.run(None, {"text": e})[0])

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        if self.text_encoder is None:
            raise ValueError("no text encoder given: pass text_encoder= or use project_text()")
        return self.project_text(self.text_encoder.encode(list(texts)))

    def score_windows(self, instruction: str, stamps, poses, ends: Sequence[float]) -> np.ndarray:
        """Cosine of the instruction with the trajectory window ending at each of ``ends``."""
        if len(ends) == 0:
            return np.zeros(0, np.float32)
        pe = self.encode_poses(self.window_features(stamps, poses, ends))
        te = self.encode_text([instruction])[0]
        return (pe @ te).astype(np.float32)


def combine_scores(retrieval: np.ndarray, pose_text: np.ndarray, weight: float) -> np.ndarray:
    """(1 - w) * retrieval + w * pose_text (both cosines); w in [0, 1]."""
    if not (0.0 <= weight <= 1.0) or not math.isfinite(weight):
        raise ValueError(f"pose_text_weight must be in [0, 1], got {weight}")
    r = np.asarray(retrieval, dtype=np.float32)
    p = np.asarray(pose_text, dtype=np.float32)
    return ((1.0 - weight) * r + weight * p).astype(np.float32)
