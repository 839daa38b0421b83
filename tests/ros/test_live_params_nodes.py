"""Live parameters on real processes: SetParameters at run time changes what the nodes decide;
invalid values and read-only parameters are refused with a reason and change nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from lavpr_interfaces.msg import LoopClosure, PlaceDescriptor, RetrievedPlaces
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python
from std_msgs.msg import String
from test_text_nav_refusal import LATCHED, _described_places

pytestmark = pytest.mark.ros


def _set(client, node: str, name: str, value) -> tuple[bool, str]:
    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    res = client.call(SetParameters, f"/{node}/set_parameters", req)
    return bool(res.results[0].successful), str(res.results[0].reason)


def _get(client, node: str, name: str):
    res = client.call(GetParameters, f"/{node}/get_parameters", GetParameters.Request(names=[name]))
    return parameter_value_to_python(res.values[0])


def test_text_nav_min_score_set_at_run_time(procs, client, text_model) -> None:
    tn = procs.start_python(
        "text_nav",
        ["-m", "lavpr_ros.nodes.text_nav", "--ros-args", "-p", f"text_model:={text_model.parent}"],
    )
    tn.wait_for_line("[text_nav] ready", timeout=120)
    answers = client.subscribe(RetrievedPlaces, "vpr/retrieved_places")
    goals = client.subscribe(PoseStamped, "goal_pose")
    places = client.publisher(RetrievedPlaces, "vpr/described_places", LATCHED)
    places.publish(_described_places())
    client.wait_until(lambda: "111 described place(s)" in tn.output(), 60, "places reach text_nav")
    cmd = client.publisher(String, "text_command")
    client.wait_for_subscribers(cmd)
    default = _get(client, "text_nav", "min_score")

    def ask(n: int) -> RetrievedPlaces:
        cmd.publish(String(data="go to the red fire extinguisher"))
        client.wait_until(lambda: len(answers) >= n, 30, f"answer {n}")
        return answers[-1]

    assert ask(1).goal_sent, answers[-1].reason
    assert _set(client, "text_nav", "min_score", 0.95) == (True, "")
    refused = ask(2)
    assert not refused.goal_sent and "min_score 0.950" in refused.reason, refused.reason
    # Invalid values: refused with the parameter and the why; the value in force stays.
    for name, value, word in [
        ("min_score", 3.0, "min_score must be in [-1, 1]"),
        ("min_score", math.nan, "NaN"),
        ("ambiguity_radius_m", -1.0, "ambiguity_radius_m must be finite and >= 0"),
        ("top_k", 0, "top_k must be >= 1"),
        ("min_score", "high", "Wrong parameter type"),
    ]:
        ok, reason = _set(client, "text_nav", name, value)
        assert not ok and word in reason, (name, value, reason)
    assert _get(client, "text_nav", "min_score") == 0.95
    assert _get(client, "text_nav", "top_k") == 5
    assert not ask(3).goal_sent  # 0.95 still in force
    # Read-only (structural) parameters: rclpy refuses them.
    ok, reason = _set(client, "text_nav", "text_model", "other")
    assert not ok and "read-only" in reason, reason
    assert _set(client, "text_nav", "min_score", default) == (True, "")
    assert ask(4).goal_sent, answers[-1].reason
    client.wait_until(lambda: len(goals) == 2, 30, "two goals")
    assert tn.alive()


def _unit(rng: np.random.Generator, dim: int = 64) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_place_map_loop_closure_threshold_set_at_run_time(procs, client) -> None:
    node = procs.start_python(
        "place_map",
        [
            "-m",
            "lavpr_ros.nodes.place_map",
            "--ros-args",
            *("-p", "pose_source:=none", "-p", "model_id:=m", "-p", "publish_candidates:=true"),
            *("-p", "verification.enabled:=false", "-p", "loop_closure.sequence_length:=0"),
            *("-p", "loop_closure.exclude_recent_s:=0.0", "-p", "loop_closure.exclude_recent_n:=0"),
            *("-p", "loop_closure.keyframe_max_interval_s:=0.5"),
            *("-p", "loop_closure.min_score:=0.5"),
        ],
    )
    node.wait_for_line("[place_map] ready", timeout=60)
    candidates = client.subscribe(LoopClosure, "vpr/loop_candidates")
    closures = client.subscribe(LoopClosure, "vpr/loop_closure")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    client.wait_for_subscribers(pub)
    rng = np.random.default_rng(3)
    seen = [_unit(rng) for _ in range(4)]
    stamp = [100.0]

    def send(v: np.ndarray) -> LoopClosure | None:
        n = len(candidates)
        msg = PlaceDescriptor()
        msg.header.stamp.sec = int(stamp[0])
        msg.model_id, msg.dim, msg.descriptor = "m", 64, v.tolist()
        stamp[0] += 1.0
        pub.publish(msg)
        if n == 0 and stamp[0] == 101.0:
            return None  # the first keyframe has nothing to match
        client.wait_until(lambda: len(candidates) > n, 10, "the keyframe's candidate")
        return candidates[-1]

    for v in seen:
        send(v)
    assert not any(c.accepted for c in candidates)  # unrelated places (cosines ~0.1)

    def revisit() -> LoopClosure:
        noisy = seen[1] + 0.2 * _unit(rng)
        c = send(noisy / np.linalg.norm(noisy))
        assert c is not None and c.match_id == 1, c
        return c

    assert revisit().accepted
    assert _set(client, "place_map", "loop_closure.min_score", 0.999) == (True, "")
    c = revisit()
    assert not c.accepted and "min_score 0.999" in c.reason, c.reason
    for name, value, word in [
        ("loop_closure.min_score", math.nan, "NaN"),
        ("loop_closure.top_k", 0, "top_k must be >= 1"),
        ("loop_closure.keyframe_min_distance_m", -1.0, "keyframe_min_distance_m"),
        ("verification.min_inliers", 20, "verification is off"),
        ("diagnostics_period_s", 0.0, "diagnostics_period_s must be > 0"),
    ]:
        ok, reason = _set(client, "place_map", name, value)
        assert not ok and word in reason, (name, value, reason)
    assert _get(client, "place_map", "loop_closure.min_score") == 0.999
    assert _get(client, "place_map", "loop_closure.top_k") == 5
    assert not revisit().accepted  # still 0.999
    for name, value in [
        ("map_path", "/tmp/elsewhere"),
        ("index_type", "hnsw"),
        ("reliable_input", True),
        ("loop_closure.sequence_length", 10),
    ]:
        ok, reason = _set(client, "place_map", name, value)
        assert not ok and "read-only" in reason, (name, reason)
    assert _get(client, "place_map", "index_type") == "auto"  # unchanged (the default)
    assert _set(client, "place_map", "loop_closure.min_score", 0.5) == (True, "")
    assert revisit().accepted
    client.wait_until(lambda: len(closures) == 2, 10, "the two accepted closures")
    assert node.alive()
