"""place_map with verification on (the default), as a real process: a depth image of the wrong
encoding or size, unusable CameraInfo and black frames are reported and skipped; the node runs on
and keeps adding places."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lavpr_interfaces.msg import PlaceDescriptor
from ros_nodes import Diag, start_place_map
from sensor_msgs.msg import CameraInfo, Image

pytestmark = pytest.mark.ros


def _desc(stamp: int, seed: int) -> PlaceDescriptor:
    v = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    msg = PlaceDescriptor()
    msg.header.stamp.sec = stamp
    msg.model_id, msg.dim = "m", 16
    msg.descriptor = (v / np.linalg.norm(v)).tolist()
    return msg


def _image(stamp: int, h: int, w: int, encoding: str, data: bytes, step: int) -> Image:
    msg = Image()
    msg.header.stamp.sec = stamp
    msg.height, msg.width, msg.encoding, msg.step = h, w, encoding, step
    msg.data = data
    return msg


def test_bad_depth_camera_info_and_black_frames(procs, client) -> None:
    node = start_place_map(
        procs,
        "place_map",
        "pose_source:=none",
        "model_id:=m",
        "reliable_input:=true",
    )
    status = Diag(client, "place_map")
    desc = client.publisher(PlaceDescriptor, "vpr/descriptor")
    image = client.publisher(Image, "camera/image_raw")
    depth = client.publisher(Image, "camera/depth/image_raw")
    info = client.publisher(CameraInfo, "camera/camera_info")
    for pub in (desc, image, depth, info):
        client.wait_for_subscribers(pub)

    def send(pub, msg, cond, what: str) -> None:
        """Publish until the node reports it (its camera inputs are best effort: a sample sent
        before the reader side has matched is lost, as on a robot)."""
        deadline = time.monotonic() + 15
        while not (status() and cond(status())):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: place_map said {status()}\n{node.output()[-2000:]}")
            pub.publish(msg)
            time.sleep(0.5)

    # Depth as 8-bit colour (wrong encoding), then 16UC1 with a step that does not fit the size.
    send(
        depth,
        _image(10, 120, 160, "rgb8", bytes(120 * 160 * 3), 160 * 3),
        lambda s: "camera/depth/image_raw refused" in s["message"] and "rgb8" in s["message"],
        "wrong depth encoding",
    )
    send(
        depth,
        _image(11, 120, 160, "16UC1", bytes(10), 320),
        lambda s: "camera/depth/image_raw refused" in s["message"] and "rgb8" not in s["message"],
        "truncated depth",
    )
    # CameraInfo with an all-zero K: verification runs without intrinsics, says so.
    send(
        info,
        CameraInfo(width=160, height=120),
        lambda s: "camera_info unusable" in s["message"],
        "zero camera matrix",
    )
    # Black frames (no texture) at the keyframes' stamps: places are still added.
    for i, t in enumerate((20, 21, 22)):
        image.publish(_image(t, 120, 160, "rgb8", bytes(120 * 160 * 3), 160 * 3))
        time.sleep(0.2)
        desc.publish(_desc(t, seed=i))
    client.wait_until(lambda: status().get("map_size") == "3", 10, "three places")
    assert node.alive()
