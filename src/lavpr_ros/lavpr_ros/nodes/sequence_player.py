"""sequence_player: plays an image sequence with odometry, as a robot's camera would.

Publishes camera/image_raw (sensor_msgs/Image, rgb8, or CompressedImage with ``compressed``) and
odom (nav_msgs/Odometry) with the same stamp, at ``rate_hz``. Used by the integration tests, the
demo and `lavpr bench ros`. Prints one line per published frame when ``verbose``.
"""

from __future__ import annotations

import time

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from lavpr_ros.core.images import load_image
from lavpr_ros.core.sequences import DATASET_TRAVERSES, dataset_frames, route_pose
from lavpr_ros.nodes.convert import array_to_pose, sec_to_stamp
from lavpr_ros.nodes.discovery import missing_readers
from lavpr_ros.nodes.params import Param, declare
from lavpr_ros.nodes.runner import run_node

PARAMS = [
    Param("dataset", "nordland", "Dataset under LAVPR_DATA: nordland or corridor"),
    Param(
        "traverses",
        "",
        "Comma-separated traverses played one after the other (default: summer,winter / ref,query)",
    ),
    Param("start", 0, "First frame index of the segment"),
    Param("count", 200, "Frames per traverse (<= 0: all)"),
    Param("rate_hz", 10.0, "Publishing rate [Hz]"),
    Param("spacing_m", 2.0, "Distance between consecutive places on the simulated route [m]"),
    Param("start_stamp", 1000.0, "Stamp of the first frame [s]"),
    Param(
        "stamp_period_s",
        1.0,
        "Time between frame stamps [s]: dataset time, so playing faster than it (rate_hz) is "
        "like replaying a bag at a rate factor",
    ),
    Param("compressed", False, "Publish CompressedImage (PNG/JPEG bytes) instead of Image"),
    Param(
        "camera_readers",
        "vpr_encoder",
        "Comma-separated nodes that must read the camera before playing starts ('' = any one "
        "reader); place_map reads it too, but comes up before the encoder has loaded its model",
    ),
    Param(
        "odom_readers",
        "place_map",
        "Comma-separated nodes that must read odom before playing starts ('' = any one reader)",
    ),
    Param("odom_frame", "odom", "frame_id of the odometry"),
    Param("verbose", False, "Print a line per frame"),
]


class SequencePlayer(Node):
    def __init__(self) -> None:
        super().__init__("sequence_player")
        self.p = declare(self, PARAMS)
        traverses = [t for t in str(self.p["traverses"]).split(",") if t] or DATASET_TRAVERSES[
            self.p["dataset"]
        ]
        count = int(self.p["count"])
        self.frames = dataset_frames(
            self.p["dataset"], traverses, int(self.p["start"]), count if count > 0 else None
        )
        # Reliable with a deep history: a sample lost under load is repaired from it, not lost.
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        if self.p["compressed"]:
            self.pub_img = self.create_publisher(
                CompressedImage, "camera/image_raw/compressed", qos
            )
        else:
            self.pub_img = self.create_publisher(Image, "camera/image_raw", qos)
        self.pub_odom = self.create_publisher(Odometry, "odom", qos)
        self.index = 0
        self.started = False
        self.period = 1.0 / float(self.p["rate_hz"])
        self.timer = self.create_timer(self.period, self._tick)
        self.t_wait = time.monotonic()
        self.t_matched: float | None = None

    def _tick(self) -> None:
        if not self.started:
            # Both the camera and the odometry readers must be matched (a best-effort reader
            # loses what is sent before), then a moment for the other side of the match.
            img, odom = self.pub_img, self.pub_odom
            wanted = {
                pub.topic_name: [n.strip() for n in str(self.p[key]).split(",") if n.strip()]
                for pub, key in ((img, "camera_readers"), (odom, "odom_readers"))
            }
            anyone = all(p.get_subscription_count() > 0 for p in (img, odom))
            if missing_readers(self, wanted) or not anyone:
                self.t_matched = None
                if time.monotonic() - self.t_wait > 60:
                    self.get_logger().warning("still waiting for camera and odom subscribers")
                    self.t_wait = time.monotonic()
                return
            if self.t_matched is None:
                self.t_matched = time.monotonic()
            if time.monotonic() - self.t_matched < 0.5:
                return
            self.started = True
            print(f"[sequence_player] playing {len(self.frames)} frames", flush=True)
        if self.index >= len(self.frames):
            if self.index == len(self.frames):
                print(f"[sequence_player] done: published {self.index} frames", flush=True)
                self.index += 1
            return
        f = self.frames[self.index]
        stamp = sec_to_stamp(
            float(self.p["start_stamp"]) + self.index * float(self.p["stamp_period_s"])
        )
        if self.p["compressed"]:
            msg = CompressedImage()
            msg.format = f.path.suffix.lstrip(".").lower()
            msg.data = f.path.read_bytes()
        else:
            img = load_image(f.path)
            msg = Image()
            msg.height, msg.width = img.shape[:2]
            msg.encoding, msg.step = "rgb8", img.shape[1] * 3
            msg.data = np.ascontiguousarray(img).tobytes()
        msg.header.stamp = stamp
        msg.header.frame_id = "camera"
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = self.p["odom_frame"]
        odom.child_frame_id = "base_link"
        odom.pose.pose = array_to_pose(
            route_pose(f.place_index, spacing_m=float(self.p["spacing_m"]))
        )
        self.pub_odom.publish(odom)  # pose first: place_map pairs the image with it
        self.pub_img.publish(msg)
        if self.p["verbose"]:
            print(f"[sequence_player] frame {self.index} {f.traverse}/{f.path.name}", flush=True)
        self.index += 1


def main(args: list[str] | None = None) -> None:
    run_node(SequencePlayer, args)


if __name__ == "__main__":
    main()
