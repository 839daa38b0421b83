"""place_map as a real process: bad descriptors and time jumps are handled, the node runs on."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lavpr_interfaces.msg import PlaceDescriptor
from ros_nodes import Diag, start_place_map

pytestmark = pytest.mark.ros


def _desc(stamp: float, dim: int = 16, model: str = "m", seed: int = 0, dim_field=None):
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    msg = PlaceDescriptor()
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = round((stamp - int(stamp)) * 1e9)
    msg.model_id = model
    msg.dim = dim if dim_field is None else dim_field
    msg.descriptor = (v / np.linalg.norm(v)).tolist()
    return msg


def test_place_map_bad_descriptors_and_time_jumps(procs, client) -> None:
    node = start_place_map(
        procs,
        "place_map",
        "pose_source:=none",
        "model_id:=m",  # the map's model from configuration: no confirmation wait
    )
    status = Diag(client, "place_map")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    client.wait_for_subscribers(pub)

    def send(msg, cond, what: str) -> None:
        pub.publish(msg)
        client.wait_until(lambda: bool(status()) and cond(status()), 10, what)

    send(_desc(10.0, seed=1), lambda s: s["map_size"] == "1", "first keyframe")
    send(_desc(11.0, seed=2), lambda s: s["map_size"] == "2", "second keyframe")
    # Another model's descriptor, a dim field that lies, NaN values: refused, map unchanged.
    send(_desc(12.0, model="other", seed=3), lambda s: "'other'" in s["message"], "model")
    send(_desc(12.0, seed=4, dim_field=99), lambda s: "dim field 99" in s["message"], "dim")
    nan = _desc(12.0, seed=5)
    nan.descriptor = [float("nan")] * 16
    send(nan, lambda s: "NaN" in s["message"], "NaN descriptor")
    # Slightly older than the last keyframe: dropped as out of order.
    send(_desc(10.8, seed=6), lambda s: "older than the last keyframe" in s["message"], "ooo")
    assert status()["map_size"] == "2" and int(status()["rejected"]) == 4
    # A big jump back (bag restarted): state reset, the map kept and growing.
    send(_desc(1.0, seed=7), lambda s: s["time_resets"] == "1" and s["map_size"] == "3", "reset")
    send(_desc(2.0, seed=8), lambda s: s["map_size"] == "4", "keyframes after the reset")
    assert node.alive()


def test_place_map_saves_on_shutdown_and_loads_at_start(procs, client, tmp_path) -> None:
    from lavpr_ros.core.place_map import PlaceMap

    map_dir = tmp_path / "map"
    args = [
        "-m",
        "lavpr_ros.nodes.place_map",
        "--ros-args",
        "-p",
        "pose_source:=none",
        "-p",
        f"map_path:={map_dir}",
        "-p",
        "save_on_shutdown:=true",
        "-p",
        "diagnostics_period_s:=0.3",
        "-p",
        "loop_closure.keyframe_max_interval_s:=0.5",
    ]
    node = procs.start_python("place_map", args)
    node.wait_for_line("[place_map] ready", timeout=60)
    diags = client.subscribe(DiagnosticArray, "/diagnostics")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    client.wait_for_subscribers(pub)

    def map_size() -> int:
        for arr in reversed(list(diags)):
            for st in arr.status:
                if st.name.endswith("/place_map"):
                    return int({kv.key: kv.value for kv in st.values}["map_size"])
        return -1

    # The stream's model becomes the map's once model_confirm_count (3) descriptors agree.
    for i in range(3):
        pub.publish(_desc(10.0 + i, seed=i))
    client.wait_until(lambda: map_size() == 3, 10, "3 places")
    assert node.stop(timeout=15) == 0  # SIGINT, as Ctrl-C
    assert "saved 3 places" in node.output()
    loaded = PlaceMap.load(map_dir)
    assert len(loaded) == 3 and loaded.model_id == "m"
    # Restarted, it loads the map and keeps adding to it.
    diags.clear()
    node2 = procs.start_python("place_map2", args)
    node2.wait_for_line("loaded map", timeout=60)
    client.wait_until(lambda: map_size() == 3, 10, "the loaded map in diagnostics")


def test_place_map_takes_corrected_poses_from_the_pose_graph(procs, client) -> None:
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path as PathMsg
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    node = start_place_map(
        procs,
        "place_map",
        "pose_source:=none",
        "model_id:=m",
    )
    status = Diag(client, "place_map")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    pub_path = client.publisher(PathMsg, "pose_graph/keyframe_path", latched)
    client.wait_for_subscribers(pub)

    for i, stamp in enumerate((10.0, 11.0)):
        pub.publish(_desc(stamp, seed=i + 1))
    client.wait_until(lambda: status().get("map_size") == "2", 10, "two keyframes")
    path = PathMsg()
    path.header.frame_id = "map"
    for stamp in (10, 11, 50):  # the place at 50 s does not exist: ignored
        ps = PoseStamped()
        ps.header.stamp.sec = stamp
        ps.pose.position.x = float(stamp)
        ps.pose.orientation.w = 1.0
        path.poses.append(ps)
    pub_path.publish(path)
    client.wait_until(lambda: status().get("poses_corrected") == "2", 10, "corrected poses")
    assert node.alive()
