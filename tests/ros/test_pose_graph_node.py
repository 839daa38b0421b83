"""pose_graph as a real process over DDS: keyframes + a closure correct the pose; bad closures
are rejected with a reason; the graph is saved on shutdown and loaded at start."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from geometry_msgs.msg import PoseStamped, TransformStamped
from lavpr_interfaces.msg import LoopClosure
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_nodes import Diag

pytestmark = pytest.mark.ros

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _pose(msg_pose, x: float, y: float, yaw: float) -> None:
    msg_pose.position.x, msg_pose.position.y = x, y
    msg_pose.orientation.z, msg_pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)


def _drifted_square() -> list[tuple[float, float, float]]:
    """Odometry of a 10 m square driven back to the start: +4 % scale, heading creeping."""
    out, x, y, h = [], 0.0, 0.0, 0.0
    for side in range(4):
        for _ in range(10):
            out.append((x, y, h))
            x, y = x + 1.04 * math.cos(h), y + 1.04 * math.sin(h)
            h += 0.015
        h += math.pi / 2 if side < 3 else 0.0
    out.append((x, y, h))
    return out


def _start(procs, graph_file: Path):
    node = procs.start_python(
        "pose_graph",
        [
            "-m",
            "lavpr_ros.nodes.pose_graph",
            "--ros-args",
            "-p",
            f"graph_path:={graph_file}",
            "-p",
            "diagnostics_period_s:=0.3",
            "-p",
            "reliable_input:=true",
        ],
    )
    node.wait_for_line("[pose_graph] ready", timeout=60)
    return node


def test_pose_graph_node_corrects_rejects_and_persists(procs, client, tmp_path) -> None:
    graph_file = tmp_path / "map.pose_graph.json"
    node = _start(procs, graph_file)
    status = Diag(client, "pose_graph")
    paths = client.subscribe(PathMsg, "pose_graph/keyframe_path", LATCHED)
    tfs = client.subscribe(TransformStamped, "pose_graph/map_to_odom")
    corrected = client.subscribe(Odometry, "pose_graph/odometry")
    pub_lc = client.publisher(LoopClosure, "vpr/loop_closure")
    pub_path = client.publisher(PathMsg, "vpr/keyframe_path", LATCHED)
    pub_odom = client.publisher(Odometry, "odom")

    def closure(q: int, m: int, stamp_q: float, stamp_m: float) -> LoopClosure:
        lc = LoopClosure()
        lc.header.stamp.sec, lc.header.stamp.nanosec = int(stamp_q), 0
        lc.header.frame_id = "odom"
        lc.match_stamp.sec = int(stamp_m)
        lc.query_id, lc.match_id, lc.accepted = q, m, True
        return lc

    # A closure before any keyframe: rejected with the reason, node alive.
    client.wait_for_subscribers(pub_lc)
    pub_lc.publish(closure(1, 0, 101, 100))
    client.wait_until(lambda: "before any odometry" in status().get("message", ""), 20, "early")

    odo = _drifted_square()
    path = PathMsg()
    path.header.frame_id = "odom"
    for i, (x, y, h) in enumerate(odo):
        ps = PoseStamped()
        ps.header.stamp.sec = 100 + i
        _pose(ps.pose, x, y, h)
        path.poses.append(ps)
    pub_path.publish(path)
    client.wait_until(lambda: status().get("keyframes") == str(len(odo)), 20, "keyframes")

    # Unknown match keyframe and a NaN covariance: rejected, nothing added.
    pub_lc.publish(closure(40, 7, 100 + 40, 5))
    client.wait_until(lambda: "unknown to the graph" in status().get("message", ""), 20, "unk")
    bad = closure(40, 0, 140, 100)
    bad.has_transform = True
    bad.transform.rotation.w = 1.0
    bad.transform.translation.z = 1.0
    bad.covariance = [math.nan] * 36
    pub_lc.publish(bad)
    client.wait_until(lambda: "NaN" in status().get("message", ""), 20, "NaN covariance")
    assert status()["loop_factors"] == "0" and int(status()["closures_rejected"]) == 3

    # The true closure: the end of the square is its start.
    drift = math.hypot(odo[-1][0], odo[-1][1])
    pub_lc.publish(closure(40, 0, 140, 100))
    client.wait_until(lambda: status().get("loop_factors") == "1", 20, "closure")
    client.wait_until(lambda: len(paths) > 0 and len(paths[-1].poses) == len(odo), 20, "path")
    end = paths[-1].poses[-1].pose.position
    assert math.hypot(end.x, end.y) < 0.95 * drift  # pulled towards the start
    assert paths[-1].header.frame_id == "map"
    client.wait_until(lambda: len(tfs) > 0, 20, "map -> odom")
    assert (tfs[-1].header.frame_id, tfs[-1].child_frame_id) == ("map", "odom")
    # Odometry at the newest keyframe comes out corrected into map.
    odom = Odometry()
    odom.header.stamp.sec, odom.header.frame_id, odom.child_frame_id = 141, "odom", "base_link"
    _pose(odom.pose.pose, *odo[-1])
    client.wait_for_subscribers(pub_odom)
    pub_odom.publish(odom)
    client.wait_until(lambda: len(corrected) > 0, 20, "corrected odometry")
    c = corrected[-1].pose.pose.position
    assert corrected[-1].header.frame_id == "map"
    assert math.hypot(c.x - end.x, c.y - end.y) < 1e-3
    # A closure whose query keyframe is not in the graph yet and carries no comparable pose
    # (its match was corrected into map): it waits for the next keyframe path, then counts.
    late = closure(41, 1, 100 + len(odo), 101)
    pub_lc.publish(late)
    time.sleep(1.0)
    assert status()["loop_factors"] == "1"  # waiting, not rejected
    ps = PoseStamped()
    ps.header.stamp.sec = 100 + len(odo)
    _pose(ps.pose, odo[-1][0] + 1.0, odo[-1][1], odo[-1][2])
    path.poses.append(ps)
    pub_path.publish(path)
    client.wait_until(lambda: status().get("loop_factors") == "2", 20, "the waiting closure")
    assert int(status()["closures_rejected"]) == 3
    assert node.alive()

    # Saved on shutdown, loaded by the next process.
    procs.stop_all()
    assert graph_file.is_file()
    _start(procs, graph_file)
    status.msgs.clear()
    client.wait_until(
        lambda: status().get("keyframes") == str(len(odo) + 1) and status()["loop_factors"] == "2",
        30,
        "loaded graph",
    )
