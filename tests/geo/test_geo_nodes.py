"""geo_localizer and place_map's geo map selection as real processes over DDS."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from fake_globe import FRANCE, MODEL, NORWAY, FakeGlobeServer, Reply
from lavpr_interfaces.msg import GeoEstimate
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from lavpr_ros.core.images import load_image
from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.graph.ros_client import RosClient

pytestmark = pytest.mark.ros

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _image_msg(data_root: Path, stamp: int) -> Image:
    rgb = load_image(data_root / "corridor" / "query" / "0000010.jpg")
    msg = Image()
    msg.header.stamp.sec = stamp
    msg.header.frame_id = "camera"
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding, msg.step = "rgb8", rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


def _start_geo(procs, base_url: str, *extra: str):
    node = procs.start_python(
        "geo_localizer",
        ["-m", "lavpr_ros.nodes.geo_localizer", "--ros-args",
         "-p", f"base_url:={base_url}", "-p", "retry_backoff_s:=0.05",
         "-p", "diagnostics_period_s:=0.3", *[a for x in extra for a in ("-p", x)]],
        env={"LAVPR_GEO_API_KEY": "test-key"},
    )  # fmt: skip
    node.wait_for_line("[geo_localizer] ready", timeout=60)
    return node


def _trigger_when_image_arrived(client: RosClient, pub, msg: Image) -> Trigger.Response:
    client.wait_for_subscribers(pub)
    for _ in range(60):
        pub.publish(msg)
        time.sleep(0.1)
        res = client.call(Trigger, "geo_localize", Trigger.Request())
        if res.success or "no camera image" not in res.message:
            return res
    raise TimeoutError("the node never received the image")


def _geo_status(diags: list[DiagnosticArray]) -> tuple[str, dict[str, str]]:
    for arr in reversed(list(diags)):
        for st in arr.status:
            if "geo_localizer" in st.name:
                return st.message, {kv.key: kv.value for kv in st.values}
    return "", {}


def test_trigger_publishes_estimate_then_busy_and_failures_are_reported(
    procs, client, data_root
) -> None:
    replies = [
        Reply(NORWAY, delay_s=1.5),  # slow: a second trigger meanwhile is refused
        Reply("invalid api key", status=401),  # not retried; reported
        Reply("I'd rather not say."),  # garbage: reported
        Reply("down", status=503),  # retried, then
        Reply(FRANCE),  # success again
    ]
    with FakeGlobeServer(replies, max_requests=30, lifetime_s=120) as server:
        node = _start_geo(procs, server.base_url, "max_retries:=1")
        estimates = client.subscribe(GeoEstimate, "vpr/geo_estimate")
        diags = client.subscribe(DiagnosticArray, "/diagnostics")
        pub = client.publisher(Image, "camera/image_raw")
        msg = _image_msg(data_root, stamp=42)

        res = _trigger_when_image_arrived(client, pub, msg)
        assert res.success and "request started" in res.message
        busy = client.call(Trigger, "geo_localize", Trigger.Request())
        assert not busy.success and busy.message.startswith("busy")
        client.wait_until(lambda: len(estimates) >= 1, 30, "the first GeoEstimate")
        est = estimates[0]
        assert (est.country, est.city) == ("Norway", "Bodø")
        assert est.has_coordinates and est.latitude == pytest.approx(67.28)
        assert math.isnan(est.confidence) and est.model == MODEL
        assert est.latency_ms >= 1400 and "Norwegian" in est.reasoning
        assert est.header.stamp.sec == 42 and est.header.frame_id == "camera"
        chat = server.chat_requests[0]
        assert chat["headers"]["Authorization"] == "Bearer test-key"

        def wait_diag(text: str) -> None:
            client.wait_until(lambda: text in _geo_status(diags)[0], 20, f"diagnostics '{text}'")

        # 401: no retry, no estimate, the reason in diagnostics and the log.
        assert client.call(Trigger, "geo_localize", Trigger.Request()).success
        wait_diag("HTTP 401")
        assert len(server.chat_requests) == 2
        # Garbage reply.
        client.wait_until(lambda: _geo_status(diags)[1].get("busy") == "False", 10, "idle")
        assert client.call(Trigger, "geo_localize", Trigger.Request()).success
        wait_diag("reply unusable")
        # 503 then a good answer (one retry).
        client.wait_until(lambda: _geo_status(diags)[1].get("busy") == "False", 10, "idle")
        assert client.call(Trigger, "geo_localize", Trigger.Request()).success
        client.wait_until(lambda: len(estimates) >= 2, 30, "the second GeoEstimate")
        assert (estimates[1].country, estimates[1].city) == ("France", "Paris")
        wait_diag("last estimate: France / Paris")
        values = _geo_status(diags)[1]
        assert values["estimates"] == "2" and values["failures"] == "2"
        assert int(values["refused"]) >= 1 and values["retries"] == "1"
        assert len(estimates) == 2  # failures published nothing
        assert node.alive()
    out = node.output()
    assert "HTTP 401" in out and "no <answer> block" in out and "geo estimate: Norway" in out


def test_periodic_requests(procs, client, data_root) -> None:
    with FakeGlobeServer([Reply(FRANCE)], max_requests=10, lifetime_s=60) as server:
        node = _start_geo(procs, server.base_url, "period_s:=0.5", f"model:={MODEL}")
        estimates = client.subscribe(GeoEstimate, "vpr/geo_estimate")
        pub = client.publisher(Image, "camera/image_raw")
        client.wait_for_subscribers(pub)
        msg = _image_msg(data_root, stamp=7)
        deadline = time.monotonic() + 30
        while len(estimates) < 2 and time.monotonic() < deadline:
            pub.publish(msg)
            time.sleep(0.2)
        assert len(estimates) >= 2 and all(e.city == "Paris" for e in estimates)
        assert node.alive()


def _save_map(path: Path, n: int, tags: dict[str, str]) -> Path:
    m = PlaceMap(dim=16, model_id="patchnorm-test")
    m.add_batch(np.random.default_rng(n).normal(size=(n, 16)), np.arange(n, dtype=float))
    m.tags.update(tags)
    return m.save(path)


def test_place_map_loads_the_map_of_the_estimated_city(procs, client, tmp_path) -> None:
    root = tmp_path / "maps"
    _save_map(root / "bodo", 7, {"country": "Norway", "city": "Bodø"})
    _save_map(root / "oslo", 11, {"country": "Norway", "city": "Oslo"})
    node = procs.start_python(
        "place_map",
        ["-m", "lavpr_ros.nodes.place_map", "--ros-args", "-p", f"maps_root:={root}",
         "-p", "diagnostics_period_s:=0.3", "-p", "pose_source:=none"],
    )  # fmt: skip
    node.wait_for_line("[place_map] ready", timeout=60)
    diags = client.subscribe(DiagnosticArray, "/diagnostics")
    pub = client.publisher(GeoEstimate, "vpr/geo_estimate", LATCHED)
    est = GeoEstimate(country="NORWAY", city="bodo", latitude=math.nan, longitude=math.nan)
    est.confidence = math.nan
    pub.publish(est)
    node.wait_for_line("loaded map", timeout=30)

    def map_size() -> str:
        for arr in reversed(list(diags)):
            for st in arr.status:
                if "place_map" in st.name:
                    return {kv.key: kv.value for kv in st.values}["map_size"]
        return ""

    client.wait_until(lambda: map_size() == "7", 10, "place_map diagnostics map_size 7")
    assert "bodo (7 places, matched on city)" in node.output()
    # A map is in use now: later estimates are ignored.
    pub.publish(GeoEstimate(country="Norway", city="Oslo"))
    node.wait_for_line("ignored", timeout=20)
    time.sleep(0.7)
    assert map_size() == "7" and node.alive()
