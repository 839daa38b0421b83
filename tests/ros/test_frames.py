"""Frames (REP-105) over DDS, with real node processes: places keep the frame their pose came in,
goals go out in the place's frame, another goal frame without tf2 is refused with the reason,
and pose_source tf without tf2_ros stops place_map at start with a clear message."""

from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from lavpr_interfaces.msg import PlaceDescriptor, RetrievedPlace, RetrievedPlaces
from lavpr_interfaces.srv import AnnotatePlace, SaveMap
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_nodes import Diag
from std_msgs.msg import String

from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.nodes.tf_pose import tf2_available

pytestmark = pytest.mark.ros

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
NO_TF2 = pytest.mark.skipif(tf2_available(), reason="tests the behaviour without tf2_ros")


def _desc(stamp: float, seed: int) -> PlaceDescriptor:
    v = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    msg = PlaceDescriptor()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), 0
    msg.model_id, msg.dim = "m", 16
    msg.descriptor = (v / np.linalg.norm(v)).tolist()
    return msg


def _pose_cov(stamp: float, x: float, frame: str) -> PoseWithCovarianceStamped:
    msg = PoseWithCovarianceStamped()
    msg.header.stamp.sec, msg.header.frame_id = int(stamp), frame
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, 1.0
    msg.pose.pose.orientation.w = 1.0
    msg.pose.covariance[0] = 0.05
    return msg


def test_pose_cov_places_keep_the_messages_frame(procs, client, tmp_path) -> None:
    node = procs.start_python(
        "place_map",
        [
            "-m",
            "lavpr_ros.nodes.place_map",
            "--ros-args",
            "-p",
            "pose_source:=pose_cov",
            "-p",
            "model_id:=m",
            "-p",
            "diagnostics_period_s:=0.3",
            "-p",
            "pose_wait_s:=2.0",
        ],
    )
    node.wait_for_line("[place_map] ready", timeout=60)
    status = Diag(client, "place_map")
    described = client.subscribe(RetrievedPlaces, "vpr/described_places", LATCHED)
    poses = client.publisher(PoseWithCovarianceStamped, "pose_cov")
    descs = client.publisher(PlaceDescriptor, "vpr/descriptor")
    client.wait_for_subscribers(poses)
    client.wait_for_subscribers(descs)

    # Discovery: the first poses may be lost before the subscription matched; resend until taken.
    for _ in range(100):
        poses.publish(_pose_cov(9.9, 0.0, "map"))
        if "poses in frame 'map'" in node.output():
            break
        time.sleep(0.1)
    node.wait_for_line("poses in frame 'map'", timeout=5)
    # A localiser's poses in map (amcl_pose-like), 5 m apart: every image is a keyframe.
    for i, (stamp, frame) in enumerate(((10.0, "map"), (11.0, "map"), (12.0, "odom"))):
        poses.publish(_pose_cov(stamp, 5.0 * i, frame))
        poses.publish(_pose_cov(stamp + 0.05, 5.0 * i, frame))
        descs.publish(_desc(stamp, seed=i))
        client.wait_until(lambda n=i + 1: status().get("map_size") == str(n), 15, f"place {i}")
    # The last pose came in odom: the frame change is said, never mixed or relabelled.
    assert "pose frame changed from map to odom" in node.output()

    res = client.call(
        AnnotatePlace, "annotate_place", AnnotatePlace.Request(place_id=0, description="a door")
    )
    assert res.success, res.message
    client.wait_until(lambda: any(m.places for m in described), 10, "described places")
    (door,) = [m for m in described if m.places][-1].places
    assert door.pose.header.frame_id == "map" and door.pose.pose.position.x == 0.0

    res = client.call(SaveMap, "save_map", SaveMap.Request(path=str(tmp_path / "m")))
    assert res.success and "do not survive a restart" in res.message, res.message
    client.wait_until(
        lambda: "do not survive a restart" in status().get("last_warning", ""), 10, "diagnostics"
    )
    saved = PlaceMap.load(tmp_path / "m")
    assert saved.frame_ids == ["map", "map", "odom"]
    assert [p.pose[0] for p in saved.places] == pytest.approx([0.0, 5.0, 10.0], abs=0.01)
    assert node.alive()


def _described(frame: str) -> RetrievedPlaces:
    msg = RetrievedPlaces()
    msg.header.frame_id = frame
    for i, text in enumerate(["a red fire extinguisher on the wall", "a wooden bench"]):
        p = RetrievedPlace()
        p.place_id, p.description, p.has_pose = i, text, True
        p.pose.header.frame_id = frame
        p.pose.pose.position.x = 20.0 * i + 3.0
        p.pose.pose.orientation.w = 1.0
        msg.places.append(p)
    return msg


def _text_nav(procs, client, text_model, goal_frame: str):
    args = ["-m", "lavpr_ros.nodes.text_nav", "--ros-args"]
    args += ["-p", f"text_model:={text_model.parent}", "-p", "min_margin:=0.0"]
    if goal_frame:
        args += ["-p", f"goal_frame_id:={goal_frame}"]
    tn = procs.start_python("text_nav", args)
    tn.wait_for_line("[text_nav] ready", timeout=120)
    answers = client.subscribe(RetrievedPlaces, "vpr/retrieved_places")
    goals = client.subscribe(PoseStamped, "goal_pose")
    places = client.publisher(RetrievedPlaces, "vpr/described_places", LATCHED)
    places.publish(_described("odom"))
    client.wait_until(lambda: "2 described place(s)" in tn.output(), 60, "places reach text_nav")
    cmd = client.publisher(String, "text_command")
    client.wait_for_subscribers(cmd)
    cmd.publish(String(data="go to the fire extinguisher"))
    client.wait_until(lambda: len(answers) >= 1, 30, "the answer")
    return tn, answers, goals


def test_goal_is_published_in_the_places_frame(procs, client, text_model) -> None:
    tn, answers, goals = _text_nav(procs, client, text_model, "")
    assert answers[-1].goal_sent, answers[-1].reason
    client.wait_until(lambda: len(goals) == 1, 30, "goal_pose")
    assert goals[0].header.frame_id == "odom"  # not relabelled as map
    assert goals[0].pose.position.x == 3.0
    assert tn.alive()


@NO_TF2
def test_other_goal_frame_without_tf2_is_refused_with_the_reason(procs, client, text_model) -> None:
    tn, answers, goals = _text_nav(procs, client, text_model, "map")
    out = answers[-1]
    assert not out.goal_sent
    assert "goal_frame_id is 'map'" in out.reason and "'odom'" in out.reason, out.reason
    assert "tf2" in out.reason
    client.wait_until(lambda: "no goal sent" in tn.output(), 10, "the reason in the log")
    assert not goals
    assert tn.alive()


@NO_TF2
def test_pose_source_tf_without_tf2_fails_at_start(procs) -> None:
    node = procs.start_python(
        "place_map", ["-m", "lavpr_ros.nodes.place_map", "--ros-args", "-p", "pose_source:=tf"]
    )
    line = node.wait_for_line("cannot start", timeout=60)
    assert "pose_source 'tf' needs tf2_ros" in line and "not importable" in line
    assert node.popen.wait(timeout=30) == 1  # exits by itself, failed
    assert "[place_map] ready" not in node.output()
