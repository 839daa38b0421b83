"""Recent robot poses by time, so a descriptor can be paired with the pose at its image stamp."""

from __future__ import annotations

import bisect
import math

import numpy as np


class PoseBuffer:
    """Time-ordered (stamp, pose) pairs; lookup interpolates between the two bracketing poses.

    Poses are (x, y, z, qx, qy, qz, qw). Non-finite poses are refused (ValueError), so NaN from a
    broken odometry source never reaches the map. Out-of-order stamps are inserted in place.

    Poses older than ``max_age_s`` behind the newest are forgotten, except those at or after
    ``keep_from`` (the oldest stamp a descriptor may still ask for, set by its user): a bag
    replayed 20x faster than recorded with the encoder 3 s behind has its poses 60 s of stamps
    ahead of the images, and they must still be there when the descriptors come. ``max_len``
    bounds the memory either way.
    """

    def __init__(self, max_age_s: float = 30.0, max_len: int = 100_000) -> None:
        self.max_age_s = max_age_s
        self.max_len = max_len
        self.keep_from: float | None = None
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def latest_stamp(self) -> float | None:
        return self._stamps[-1] if self._stamps else None

    def add(self, stamp: float, pose: np.ndarray) -> None:
        p = np.asarray(pose, dtype=np.float64).reshape(-1)
        if p.shape != (7,):
            raise ValueError(f"pose must have 7 values (x y z qx qy qz qw), got {p.shape}")
        if not math.isfinite(stamp) or not np.isfinite(p).all():
            raise ValueError(f"non-finite pose or stamp rejected: stamp={stamp}, pose={p}")
        qn = float(np.linalg.norm(p[3:]))
        if qn < 1e-6:
            raise ValueError("pose quaternion has zero norm")
        p[3:] /= qn
        i = bisect.bisect_right(self._stamps, stamp)
        if i > 0 and self._stamps[i - 1] == stamp:
            self._poses[i - 1] = p  # duplicate stamp: newest value wins
        else:
            self._stamps.insert(i, stamp)
            self._poses.insert(i, p)
        self._prune()

    def _prune(self) -> None:
        newest = self._stamps[-1]
        old = bisect.bisect_left(self._stamps, newest - self.max_age_s)
        if self.keep_from is not None:
            # One pose before keep_from stays too: it brackets (interpolates) that stamp.
            old = min(old, max(0, bisect.bisect_right(self._stamps, self.keep_from) - 1))
        drop = max(old, len(self._stamps) - self.max_len)
        if drop > 0:
            del self._stamps[:drop]
            del self._poses[:drop]

    def lookup(self, stamp: float, tolerance_s: float) -> np.ndarray | None:
        """Pose at ``stamp``: interpolated when bracketed by poses within tolerance, else the
        nearest pose within tolerance, else None."""
        if not self._stamps:
            return None
        i = bisect.bisect_left(self._stamps, stamp)
        if i < len(self._stamps) and self._stamps[i] == stamp:
            return self._poses[i].copy()
        before = i - 1 if i > 0 else None
        after = i if i < len(self._stamps) else None
        if before is not None and after is not None:
            t0, t1 = self._stamps[before], self._stamps[after]
            if stamp - t0 <= tolerance_s and t1 - stamp <= tolerance_s:
                return _interpolate(
                    self._poses[before], self._poses[after], (stamp - t0) / (t1 - t0)
                )
        best = None
        for j in (before, after):
            if j is None or abs(self._stamps[j] - stamp) > tolerance_s:
                continue
            if best is None or abs(self._stamps[j] - stamp) < abs(self._stamps[best] - stamp):
                best = j
        return None if best is None else self._poses[best].copy()


def _interpolate(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    out = np.empty(7)
    out[:3] = (1 - w) * a[:3] + w * b[:3]
    qb = b[3:] if float(np.dot(a[3:], b[3:])) >= 0 else -b[3:]  # shortest arc
    q = (1 - w) * a[3:] + w * qb  # nlerp: exact enough between odometry samples
    out[3:] = q / np.linalg.norm(q)
    return out
