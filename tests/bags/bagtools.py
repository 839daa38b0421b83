"""Helpers of the bag tests: writing bags with two independent writers, message dicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NORDLAND_START = 1000


def write_mcap_ros2(path: Path, messages: list[tuple[str, str, int, dict]]) -> Path:
    """A bare .mcap written by mcap_ros2.writer.Writer (its own CDR encoder) from dicts."""
    from mcap_ros2.writer import Writer

    from lavpr_ros.bags.reader import typestore

    ts = typestore()
    schemas = {}
    with path.open("wb") as fh:
        w = Writer(fh)
        for topic, msgtype, t, msg in messages:
            if msgtype not in schemas:
                text, _ = ts.generate_msgdef(msgtype, ros_version=2)
                schemas[msgtype] = w.register_msgdef(msgtype, text)
            w.write_message(topic, schemas[msgtype], msg, log_time=t, publish_time=t)
        w.finish()
    return path


def _header(stamp_ns: int, frame: str) -> dict:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": frame}


def image_dict(img: np.ndarray, stamp_ns: int) -> dict:
    h, w = img.shape[:2]
    return {
        "header": _header(stamp_ns, "camera"),
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "data": np.ascontiguousarray(img).tobytes(),
    }


def odom_dict(pose: np.ndarray, stamp_ns: int) -> dict:
    p = [float(v) for v in pose]
    zero = {"x": 0.0, "y": 0.0, "z": 0.0}
    return {
        "header": _header(stamp_ns, "odom"),
        "child_frame_id": "base_link",
        "pose": {
            "pose": {
                "position": {"x": p[0], "y": p[1], "z": p[2]},
                "orientation": {"x": p[3], "y": p[4], "z": p[5], "w": p[6]},
            },
            "covariance": [0.0] * 36,
        },
        "twist": {"twist": {"linear": zero, "angular": zero}, "covariance": [0.0] * 36},
    }


def write_raw_bag(path: Path, messages: list[tuple[str, str, int, bytes]], storage="mcap"):
    """A rosbag2 bag from (topic, msgtype, log ns, CDR) in the given (storage) order."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from lavpr_ros.bags.reader import typestore

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    conns = {}
    with Writer(path, version=9, storage_plugin=plugin) as w:
        for topic, msgtype, t, raw in messages:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=typestore())
            w.write(conns[topic], t, raw)
    return path


def decision_tuples(res) -> list[tuple]:
    return [
        (d.query_stamp_ns, d.match_stamp_ns, d.accepted, round(d.score, 5)) for d in res.decisions
    ]
