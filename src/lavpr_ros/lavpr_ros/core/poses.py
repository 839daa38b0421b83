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
