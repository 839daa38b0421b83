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


def compose_poses(transform: Any, pose: Any) -> np.ndarray:
    """``transform`` ∘ ``pose``: a pose given in frame B, expressed in frame A, where
    ``transform`` is B's pose in A (what tf2's lookup_transform(A, B, t) returns). Both are
    (x, y, z, qx, qy, qz, qw); ValueError on a bad one."""
    t = validate_pose(transform)
    p = validate_pose(pose)
    if t is None or p is None:
        raise ValueError("compose_poses needs two poses")
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_quat(t[3:])  # scalar-last (x, y, z, w), as ROS
    out = np.empty(7)
    out[:3] = t[:3] + rot.apply(p[:3])
    out[3:] = (rot * Rotation.from_quat(p[3:])).as_quat()
    return out
