"""Robot poses as the core handles them: (x, y, z, qx, qy, qz, qw), validated once."""

from __future__ import annotations

from typing import Any

import numpy as np


def validate_pose(pose: Any) -> np.ndarray | None:
    """(7,) float64 with a unit quaternion, or None; ValueError on a wrong shape, NaN/inf or a
    zero quaternion (a broken odometry source must never reach the map)."""
    if pose is None:
        return None
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (7,):
        raise ValueError(f"pose must have shape (7,) (x, y, z, qx, qy, qz, qw), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"pose has non-finite values: {p.tolist()}")
    qn = float(np.linalg.norm(p[3:]))
    if qn < 1e-9:
        raise ValueError(f"pose quaternion is zero: {p[3:].tolist()}")
    p = p.copy()
    p[3:] /= qn
    return p


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (x, y, z, w) quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    qv = np.array([v[0], v[1], v[2], 0.0])
    conj = np.array([-q[0], -q[1], -q[2], q[3]])
    return _quat_mul(_quat_mul(q, qv), conj)[:3]


def compose_poses(transform: Any, pose: Any) -> np.ndarray:
    """``transform`` ∘ ``pose``: a pose given in frame B, expressed in frame A, where
    ``transform`` is B's pose in A (what tf2's lookup_transform(A, B, t) returns). Both are
    (x, y, z, qx, qy, qz, qw); ValueError on a bad one."""
    t = validate_pose(transform)
    p = validate_pose(pose)
    if t is None or p is None:
        raise ValueError("compose_poses needs two poses")
    out = np.empty(7)
    out[:3] = t[:3] + _rotate(t[3:], p[:3])
    q = _quat_mul(t[3:], p[3:])
    out[3:] = q / np.linalg.norm(q)
    return out
