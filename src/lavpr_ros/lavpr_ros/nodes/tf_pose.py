"""A thin tf2 adapter: transforms between frames, where tf2_ros is importable.

tf2_ros is part of every ROS 2 installation (and the Docker image) but not on PyPI, so it is
imported here, lazily, only by the nodes that were asked to use tf: place_map's ``pose_source
tf`` (the robot's pose as ``map_frame -> base_frame`` at each image stamp) and text_nav's
``goal_frame_id`` (a place's pose re-expressed in another frame). The math is core's
(``compose_poses``); this module only asks tf2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TF2_MISSING = (
    "tf2_ros is not importable in this Python environment (it ships with ROS 2 installations "
    "and the Docker image, not with the PyPI wheels)"
)


def tf2_available() -> bool:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


class TfLookup:
    """A tf2 buffer filled by a TransformListener on ``node``; RuntimeError when tf2_ros is
    missing (with ``purpose`` saying what needed it)."""

    def __init__(self, node: Any, purpose: str) -> None:
        try:
            import tf2_ros
        except ImportError as exc:
            raise RuntimeError(f"{purpose} needs tf2_ros: {TF2_MISSING}") from exc
        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self.last_error = ""

    def lookup(self, target: str, source: str, stamp: float | None) -> np.ndarray | None:
        """``source``'s pose in ``target`` (x, y, z, qx, qy, qz, qw) at ``stamp`` seconds (None:
        the latest transform), or None when tf cannot say (the reason in ``last_error``)."""
        from rclpy.time import Time

        when = Time() if stamp is None else Time(nanoseconds=round(stamp * 1e9))
        try:
            t = self.buffer.lookup_transform(target, source, when)
        except (
            self._tf2.LookupException,
            self._tf2.ConnectivityException,
            self._tf2.ExtrapolationException,
        ) as exc:
            self.last_error = f"no transform {target} <- {source}: {exc}"
            return None
        tr, q = t.transform.translation, t.transform.rotation
        return np.array([tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w], dtype=np.float64)
