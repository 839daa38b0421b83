"""text_nav with a pose-text model, through the real nodes: place_map publishes the keyframe path
(vpr/keyframe_path, latched), two places get the *same* description, and only the manoeuvre named
in the command ("where we turned left" / "where we turned right") tells them apart.

The pose-text model is trained for the test by the training workspace (generated trajectories,
about a minute on one core)."""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from lavpr_interfaces.msg import PlaceDescriptor, RetrievedPlaces
from lavpr_interfaces.srv import AnnotatePlace
from nav_msgs.msg import Path as PathMsg
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "training" / ".venv" / "bin" / "lavpr-train"
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
T0, RATE = 1000.0, 2.5
DESCRIPTION = "a corridor with a blue door"


@pytest.fixture(scope="module")
def pose_text_model(tmp_path_factory, text_model) -> Path:
    if not TRAIN.exists():
        pytest.skip("training/.venv absent: `training/setup.sh` builds it")
    out = tmp_path_factory.mktemp("posetext")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            str(TRAIN),
            "posetext-train",
            "--run",
            str(out / "run"),
            "--train-size",
            "4000",
            "--test-size",
            "200",
            "--epochs",
            "15",
            "--threads",
            "1",
            "--text-model",
            str(text_model.parent),
            "--export",
            "--out",
            str(out),
            "--model-id",
            "pt",
        ],
        check=True,
        env=env,
        timeout=900,
        capture_output=True,
    )
    return out / "pt"


def _route() -> tuple[np.ndarray, np.ndarray, float, float]:
    """1 m/s: 40 s straight, 90 deg left, 45 s straight, 90 deg right, 6 s straight.
    Returns stamps, (x, y, yaw), and the times 1 s after each turn ended."""
    segs = [(40.0, 0.0), (math.pi, 0.5), (45.0, 0.0), (math.pi, -0.5), (6.0, 0.0)]
    w = np.concatenate([np.full(round(d * RATE), r) for d, r in segs])
    n = len(w)
    yaw = np.concatenate([[0.0], np.cumsum(w / RATE)[:-1]])
    x = np.concatenate([[0.0], np.cumsum(np.cos(yaw) / RATE)[:-1]])
    y = np.concatenate([[0.0], np.cumsum(np.sin(yaw) / RATE)[:-1]])
    t = T0 + np.arange(n) / RATE
    left_end = T0 + segs[0][0] + segs[1][0]
    right_end = left_end + segs[2][0] + segs[3][0]
    return t, np.stack([x, y, yaw], 1), left_end + 1.0, right_end + 1.0


def _stamp(msg, t: float) -> None:
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = round((t - int(t)) * 1e9)


def test_pose_text_picks_the_place_by_its_manoeuvre(
    procs, client, text_model, pose_text_model
) -> None:
    pm = procs.start_python(
        "place_map",
        [
            "-m",
            "lavpr_ros.nodes.place_map",
            "--ros-args",
            "-p",
            "pose_source:=pose",
            "-p",
            "pose_tolerance_s:=0.45",  # a dropped (best-effort) pose is interpolated
            "-p",
            f"text_model:={text_model.parent}",
            "-p",
            "keyframe_path_period_s:=0.2",
            "-p",
            "marker_period_s:=0.0",
        ],
    )
    tn = procs.start_python(
        "text_nav",
        [
            "-m",
            "lavpr_ros.nodes.text_nav",
            "--ros-args",
            "-p",
            f"text_model:={text_model.parent}",
            "-p",
            f"pose_text_model:={pose_text_model}",
            "-p",
            "pose_text_weight:=0.5",
            "-p",
            "min_score:=0.0",
            "-p",
            "min_margin:=0.0",  # re-ranking is tested here, not the ambiguity check
        ],
    )
    pm.wait_for_line("[place_map] ready", timeout=120)
    tn.wait_for_line("[text_nav] ready", timeout=120)
    paths = client.subscribe(PathMsg, "vpr/keyframe_path", LATCHED)
    answers = client.subscribe(RetrievedPlaces, "vpr/retrieved_places")
    pose_pub = client.publisher(PoseStamped, "pose")
    desc_pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    cmd_pub = client.publisher(String, "text_command")
    for p in (pose_pub, desc_pub, cmd_pub):
        client.wait_for_subscribers(p)
    t, xy_yaw, t_left, t_right = _route()
    rng = np.random.default_rng(0)

    def path_stamps() -> np.ndarray:
        if not paths:
            return np.zeros(0)
        s = paths[-1].poses
        return np.array([p.header.stamp.sec + p.header.stamp.nanosec * 1e-9 for p in s])

    for k, (ti, (x, y, yaw)) in enumerate(zip(t, xy_yaw, strict=True)):
        ps = PoseStamped()
        _stamp(ps, ti)
        ps.header.frame_id = "odom"
        ps.pose.position.x, ps.pose.position.y = float(x), float(y)
        ps.pose.orientation.z, ps.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        pose_pub.publish(ps)
        d = PlaceDescriptor()
        _stamp(d, ti)
        v = rng.standard_normal(16).astype(np.float32)
        d.model_id, d.dim, d.descriptor = "m", 16, (v / np.linalg.norm(v)).tolist()
        time.sleep(0.01)
        desc_pub.publish(d)
        if k % 5 == 4:  # poses go best-effort (sensor QoS): let the node catch up
            client.wait_until(
                lambda ti=ti: len(path_stamps()) and path_stamps()[-1] >= ti - 2.0,
                20,
                f"keyframes up to {ti:.1f} s: {pm.output()[-2000:]}",
            )

    client.wait_until(
        lambda: len(path_stamps()) and path_stamps()[-1] > t[-1] - 1.0,
        30,
        "the keyframe path up to the last pose",
    )
    stamps = path_stamps()
    assert len(stamps) > 60 and np.all(np.diff(stamps) > 0), pm.output()[-3000:]
    assert paths[-1].header.frame_id == "odom"
    ids = {}
    for name, when in (("left", t_left), ("right", t_right)):
        pid = int(np.argmin(np.abs(stamps - when)))  # every keyframe has a pose: index == id
        res = client.call(
            AnnotatePlace,
            "annotate_place",
            AnnotatePlace.Request(place_id=pid, description=DESCRIPTION),
        )
        assert res.success, res.message
        ids[name] = pid
    for turn in ("right", "left"):
        n = len(answers)
        cmd_pub.publish(String(data=f"go back to where we turned {turn}"))
        client.wait_until(lambda n=n: len(answers) > n, 30, f"answer to the {turn} command")
        out = answers[-1]
        assert out.goal_sent, out.reason
        got = [p.place_id for p in out.places]
        assert got[0] == ids[turn], (turn, got, ids)
        assert set(got) == set(ids.values())  # both described places, re-ranked
    assert pm.alive() and tn.alive()
