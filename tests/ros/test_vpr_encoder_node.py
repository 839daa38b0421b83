"""vpr_encoder as a real process: descriptors out, bad images refused, node keeps running."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lavpr_interfaces.msg import PlaceDescriptor
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.ros


def _image(
    h: int, w: int, encoding: str = "rgb8", step: int | None = None, seed: int = 0, stamp: int = 1
) -> Image:
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(encoding, 2)
    data = np.random.default_rng(seed).integers(0, 256, (h, w * ch), dtype=np.uint8)
    msg = Image()
    msg.header.stamp.sec = stamp
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.step = w * ch if step is None else step
    msg.data = data.tobytes()
    return msg


def test_encoder_node_publishes_and_survives_bad_input(procs, client, data_root) -> None:
    node = procs.start_python(
        "vpr_encoder",
        [
            "-m",
            "lavpr_ros.nodes.vpr_encoder",
            "--ros-args",
            "-p",
            "encoder:=patchnorm",
            "-p",
            "subscribe_compressed:=true",
            "-p",
            "max_frame_age_s:=0.0",
            "-p",
            "diagnostics_period_s:=0.5",
        ],
    )
    node.wait_for_line("[vpr_encoder] ready", timeout=60)
    descs = client.subscribe(PlaceDescriptor, "vpr/descriptor")
    diags = client.subscribe(DiagnosticArray, "/diagnostics")
    pub = client.publisher(Image, "camera/image_raw")
    pub_c = client.publisher(CompressedImage, "camera/image_raw/compressed")
    client.wait_for_subscribers(pub)
    client.wait_for_subscribers(pub_c)

    def last_status() -> tuple[int, str]:
        """(rejected_frames, message) of the newest vpr_encoder diagnostics."""
        for arr in reversed(list(diags)):
            for st in arr.status:
                if "vpr_encoder" in st.name:
                    vals = {kv.key: kv.value for kv in st.values}
                    return int(vals["rejected_frames"]), st.message
        return -1, ""

    # Best-effort readers can miss what is sent before both sides matched: send each bad image
    # until the node has counted it, then the good ones until their descriptors come back.
    bad = [
        _image(48, 64, encoding="16UC1", stamp=2),  # unsupported encoding
        _image(0, 0, stamp=3),  # zero-size
        _image(48, 64, step=10, stamp=4),  # step smaller than a row
        _image(48, 64, step=64 * 3 + 8, stamp=5),  # step promises more bytes than sent
    ]
    junk = CompressedImage(format="jpeg", data=b"\xff\xd8 definitely not a jpeg")
    junk.header.stamp.sec = 6
    good = _image(48, 64, stamp=7)
    png = (Path(data_root) / "nordland" / "summer" / "images-00010.png").read_bytes()
    good_c = CompressedImage(format="png", data=png)
    good_c.header.stamp.sec = 8

    def until(publish, cond, what: str) -> None:
        for _ in range(100):
            publish()
            try:
                client.wait_until(cond, 0.6, what)
                return
            except TimeoutError:
                continue
        raise TimeoutError(what)

    reasons = [
        "unsupported image encoding '16UC1'",
        "empty size",
        "smaller than width",
        "are required",
    ]
    for msg, reason in zip(bad, reasons, strict=True):
        until(lambda m=msg: pub.publish(m), lambda r=reason: r in last_status()[1], reason)
    until(
        lambda: pub_c.publish(junk),
        lambda: "cannot decode compressed" in last_status()[1],
        "corrupt jpeg refused",
    )
    until(lambda: pub.publish(good), lambda: any(d.header.stamp.sec == 7 for d in descs), "raw")
    until(
        lambda: pub_c.publish(good_c),
        lambda: any(d.header.stamp.sec == 8 for d in descs),
        "compressed",
    )
    assert node.alive()
    stamps = sorted(d.header.stamp.sec for d in descs)
    assert 7 in stamps and all(s not in stamps for s in (2, 3, 4, 5, 6))
    d = descs[0]
    vec = np.asarray(d.descriptor, dtype=np.float32)
    assert d.dim == vec.size and d.model_id.startswith("patchnorm")
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)

    assert last_status()[0] >= 5
    assert "16UC1" in node.output()  # the logged warning names the encoding
