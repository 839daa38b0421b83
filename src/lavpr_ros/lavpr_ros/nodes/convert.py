"""Conversions between ROS messages and the numpy/float values the core works with."""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose


def stamp_to_sec(stamp: Time) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_stamp(t: float) -> Time:
    msg = Time()
    sec = math.floor(t)
    msg.sec = int(sec)
    msg.nanosec = min(round((t - sec) * 1e9), 999_999_999)
    return msg


def pose_to_array(pose: Pose) -> np.ndarray:
    """(x, y, z, qx, qy, qz, qw); may contain NaN (the core validates)."""
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)


def array_to_pose(arr: np.ndarray | None) -> Pose:
    pose = Pose()
    if arr is None:
        pose.orientation.w = 1.0
        return pose
    a = [float(v) for v in arr]
    pose.position.x, pose.position.y, pose.position.z = a[0], a[1], a[2]
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = a[3:7]
    return pose
