"""Publisher and subscriber processes for the DDS transport test (run as scripts)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np


def make_image(seed: int, height: int = 480, width: int = 640) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_descriptor(seed: int, dim: int = 4096) -> np.ndarray:
    v = np.random.default_rng(seed + 1).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def publish(seed: int, count: int) -> int:
    import rclpy
    from lavpr_interfaces.msg import PlaceDescriptor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("test_publisher")
    qos = QoSProfile(depth=count, reliability=ReliabilityPolicy.RELIABLE)
    pub_img = node.create_publisher(Image, "camera/image_raw", qos)
    pub_desc = node.create_publisher(PlaceDescriptor, "vpr/descriptor", qos)
    deadline = time.monotonic() + 30
    while pub_img.get_subscription_count() < 1 or pub_desc.get_subscription_count() < 1:
        if time.monotonic() > deadline:
            print("no subscriber", flush=True)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    for i in range(count):
        img = make_image(seed + i)
        msg = Image()
        msg.header.stamp.sec = 1000 + i
        msg.header.frame_id = "camera_optical"
        msg.height, msg.width = img.shape[:2]
        msg.encoding = "rgb8"
        msg.step = img.shape[1] * 3
        msg.data = img.tobytes()
        pub_img.publish(msg)
        d = PlaceDescriptor()
        d.header = msg.header
        d.model_id = "test-model"
        d.dim = 4096
        d.descriptor = make_descriptor(seed + i).tolist()
        pub_desc.publish(d)
        time.sleep(0.05)
    print("published", count, flush=True)
    # Stay alive until the subscriber has everything (it exits; the test stops us).
    while rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)
    return 0


def subscribe(count: int) -> int:
    import rclpy
    from lavpr_interfaces.msg import PlaceDescriptor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("test_subscriber")
    qos = QoSProfile(depth=count, reliability=ReliabilityPolicy.RELIABLE)
    got: dict[str, list[dict[str, object]]] = {"images": [], "descriptors": []}

    def on_image(msg: Image) -> None:
        got["images"].append(
            {
                "stamp": msg.header.stamp.sec,
                "frame_id": msg.header.frame_id,
                "shape": [msg.height, msg.width, msg.step],
                "encoding": msg.encoding,
                "sha256": hashlib.sha256(bytes(msg.data)).hexdigest(),
            }
        )

    def on_desc(msg: PlaceDescriptor) -> None:
        arr = np.asarray(msg.descriptor, dtype=np.float32)
        got["descriptors"].append(
            {
                "stamp": msg.header.stamp.sec,
                "model_id": msg.model_id,
                "dim": msg.dim,
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            }
        )

    node.create_subscription(Image, "camera/image_raw", on_image, qos)
    node.create_subscription(PlaceDescriptor, "vpr/descriptor", on_desc, qos)
    print("subscriber ready", flush=True)
    deadline = time.monotonic() + 60
    while len(got["images"]) < count or len(got["descriptors"]) < count:
        if time.monotonic() > deadline:
            break
        rclpy.spin_once(node, timeout_sec=0.1)
    print("RESULT " + json.dumps(got), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["pub", "sub"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--count", type=int, default=5)
    a = parser.parse_args()
    sys.exit(publish(a.seed, a.count) if a.role == "pub" else subscribe(a.count))
