"""Issue #15 against real node processes over DDS: inputs that used to stop, poison or silence
the graph. Each test names the failure it reproduces (item numbers of the issue)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lavpr_interfaces.msg import PlaceDescriptor, RetrievedPlaces
from lavpr_interfaces.srv import AnnotatePlace, LoadMap
from nav_msgs.msg import Odometry
from ros_nodes import Diag, start_place_map
from sensor_msgs.msg import Image
from std_msgs.msg import String

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]


def _desc(stamp: float, model: str = "m", dim: int = 16, seed: int = 0) -> PlaceDescriptor:
    v = np.random.default_rng(seed).standard_normal(max(dim, 1)).astype(np.float32)[:dim]
    msg = PlaceDescriptor()
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = round((stamp - int(stamp)) * 1e9)
    msg.model_id, msg.dim = model, dim
    msg.descriptor = (v / max(float(np.linalg.norm(v)), 1e-9)).tolist() if dim else []
    return msg


def test_items_6_7_9_20_bad_first_descriptors_do_not_poison_the_map(procs, client) -> None:
    """6: empty model_id / dim 0 crashed place_map. 7: one stray 8-d descriptor locked the map
    to its model. 9: a zero or future stamp was added after a time-jump warning. 20: the
    diagnostics stayed WARN forever after one rejected frame."""
    node = start_place_map(procs, "pm_poison", "pose_source:=none")
    diag = Diag(client, "place_map")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    client.wait_for_subscribers(pub)
    pub.publish(_desc(10.0, model=""))
    client.wait_until(lambda: "empty model_id" in diag().get("message", ""), 10, "6: empty id")
    pub.publish(_desc(10.0, dim=0))
    client.wait_until(lambda: "dim 0" in diag().get("message", ""), 10, "6: dim 0")
    pub.publish(_desc(10.5, model="evil", dim=8))
    for i in range(4):
        pub.publish(_desc(11.0 + i, seed=i))
    client.wait_until(lambda: diag().get("map_size") == "4", 10, "7: real model wins")
    assert "'evil'" in diag()["last_warning"] and diag()["map_model_id"] == "m"
    now = time.time()
    pub.publish(_desc(0.0))
    client.wait_until(lambda: "stamp is zero" in diag().get("last_warning", ""), 10, "9: zero")
    pub.publish(_desc(now + 3600))
    client.wait_until(lambda: "in the future" in diag().get("last_warning", ""), 10, "9: future")
    assert diag()["map_size"] == "4" and diag()["time_resets"] == "0"
    # 20: WARN while the problem is recent, OK again afterwards (hold 10 s).
    assert diag()["level"] == "1"
    client.wait_until(lambda: diag().get("level") == "0", 20, "20: back to OK")
    assert node.alive()


def test_items_8_15_future_odometry_and_no_odometry(procs, client) -> None:
    """8: one odometry message stamped far in the future starved every later keyframe of its
    pose. 15: without odometry place_map stayed 'ok' and added places without poses silently."""
    node = start_place_map(procs, "pm_odom", "model_id:=m", "no_pose_warn_s:=1.0")
    diag = Diag(client, "place_map")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    odom = client.publisher(Odometry, "odom")
    client.wait_for_subscribers(pub)
    client.wait_for_subscribers(odom)
    # 15: descriptors, no odometry at all.
    for i in range(3):
        pub.publish(_desc(10.0 + i, seed=i))
        time.sleep(0.2)
    client.wait_until(lambda: "no pose received" in diag().get("message", ""), 15, "15: warned")
    # After the start-up grace (pose_startup_wait_s) they are added without poses, not stuck.
    client.wait_until(lambda: diag().get("without_pose") == "3", 15, "15: added without pose")
    assert diag()["level"] == "1"

    def od(stamp: float) -> Odometry:
        m = Odometry()
        m.header.stamp.sec, m.header.stamp.nanosec = int(stamp), round((stamp % 1) * 1e9)
        m.header.frame_id = "odom"
        m.pose.pose.orientation.w = 1.0
        m.pose.pose.position.x = stamp
        return m

    # 8: a bogus future pose is refused, and poses keep pairing afterwards.
    odom.publish(od(2.0**31 - 1))
    client.wait_until(lambda: "future" in diag().get("last_warning", ""), 10, "8: refused")
    for i in range(3, 8):
        odom.publish(od(10.0 + i - 0.05))
        odom.publish(od(10.0 + i + 0.05))
        time.sleep(0.05)
        pub.publish(_desc(10.0 + i, seed=i))
    client.wait_until(lambda: diag().get("map_size") == "8", 15, "keyframes")
    assert diag()["without_pose"] == "3"  # the five with odometry got their pose
    assert node.alive()


def test_items_16_17_11_sessions_model_checked_load_and_annotate(procs, client, tmp_path) -> None:
    """16: a second session overlapping the loaded map's stamps gave zero closures silently.
    17: LoadMap of another model's map succeeded, then every descriptor was dropped.
    11: annotate_place with id -5 annotated the last place."""
    from lavpr_interfaces.msg import LoopClosure

    from lavpr_ros.core.place_map import PlaceMap

    rng = np.random.default_rng(0)
    route = rng.standard_normal((12, 16)).astype(np.float32)
    first = PlaceMap(16, "m")
    for i, v in enumerate(route):
        first.add(v, 100.0 + i)
    first.save(tmp_path / "map")
    other = PlaceMap(8, "other-model")
    other.add(np.ones(8, np.float32), 1.0)
    other.save(tmp_path / "other")
    node = start_place_map(
        procs,
        "pm_sessions",
        "pose_source:=none",
        f"map_path:={tmp_path / 'map'}",
        "loop_closure.sequence_length:=0",
        "loop_closure.min_score:=0.9",
    )
    diag = Diag(client, "place_map")
    closures = client.subscribe(LoopClosure, "vpr/loop_closure")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    client.wait_for_subscribers(pub)
    for i, v in enumerate(route):  # the same route again with the same stamps
        msg = _desc(100.0 + i)
        msg.descriptor = (v / np.linalg.norm(v)).tolist()
        pub.publish(msg)
    client.wait_until(lambda: len(closures) >= 12, 15, "16: closures onto the loaded map")
    assert [c.match_id for c in closures][:12] == list(range(12))
    client.wait_until(
        lambda: "overlap the loaded map" in diag().get("last_warning", ""), 10, "16: reported"
    )
    res = client.call(LoadMap, "load_map", LoadMap.Request(path=str(tmp_path / "other")))
    assert not res.success and "other-model" in res.message and "'m'" in res.message
    res = client.call(AnnotatePlace, "annotate_place", AnnotatePlace.Request(place_id=-5))
    assert not res.success and "-5 refused" in res.message
    assert node.alive()


def test_item14_wrong_image_topic_is_named(procs, client) -> None:
    """Before: nothing in the console; diagnostics said 'no images received' without topics."""
    node = procs.start_python(
        "enc_topic",
        [
            "-m",
            "lavpr_ros.nodes.vpr_encoder",
            "--ros-args",
            "-p",
            "diagnostics_period_s:=0.3",
        ],
    )
    node.wait_for_line("[vpr_encoder] ready", timeout=60)
    diag = Diag(client, "vpr_encoder")
    client.publisher(Image, "front_cam/image_raw")  # the topic the robot really publishes
    client.wait_until(lambda: "front_cam/image_raw" in diag().get("message", ""), 20, "named")
    msg = diag()["message"]
    assert "/camera/image_raw" in msg and "remap" in msg
    node.wait_for_line("image topics on the graph", timeout=15)  # also in the log


def test_item18_bad_model_path_exits_cleanly(procs) -> None:
    """Before: a traceback ending in 'unknown encoder spec' plus a second traceback hiding it,
    and the graph kept running without an encoder."""
    node = procs.start_python(
        "enc_bad",
        ["-m", "lavpr_ros.nodes.vpr_encoder", "--ros-args", "-p", "encoder:=models/typo"],
    )
    node.popen.wait(timeout=60)
    out = node.output()
    assert node.popen.returncode == 1
    assert "[vpr_encoder] cannot start: model not found:" in out and "(cwd " in out
    assert "Models available" in out and "Traceback" not in out


def test_item18_launch_stops_the_graph_when_a_required_node_dies(procs) -> None:
    launch = procs.start(
        "launch_bad",
        [
            sys.executable,
            "-m",
            "lavpr_ros.cli.main",
            "launch",
            "image_model:=models/typo",
            "start_text_nav:=false",
        ],
    )
    launch.popen.wait(timeout=90)
    out = launch.output()
    assert launch.popen.returncode == 1
    assert "REQUIRED node vpr_encoder exited with code 1: stopping the graph" in out


def test_item19_default_text_nav_starts_and_degrades_without_a_model(procs, client) -> None:
    """Before: with default arguments text_nav started without a text model and crashed."""
    ok = procs.start_python("tn_default", ["-m", "lavpr_ros.nodes.text_nav", "--ros-args"])
    ok.wait_for_line("[text_nav] ready", timeout=90)
    if (REPO / "models" / "minilm-l6-v2" / "manifest.yaml").is_file():
        assert "text encoder minilm" in ok.output().lower()
    ok.stop()
    bad = procs.start_python(
        "tn_missing",
        [
            "-m",
            "lavpr_ros.nodes.text_nav",
            "--ros-args",
            "-p",
            "text_model:=no-such-model",
            "-r",
            "__node:=text_nav_missing",
        ],
    )
    bad.wait_for_line("[text_nav_missing] ready", timeout=90)
    places = client.subscribe(RetrievedPlaces, "vpr/retrieved_places")
    cmd = client.publisher(String, "text_command")
    client.wait_for_subscribers(cmd)
    cmd.publish(String(data="take me to the kitchen"))
    client.wait_until(lambda: len(places) >= 1, 15, "a refusal")
    assert "no text model" in places[-1].reason and not places[-1].goal_sent
    assert bad.alive()
