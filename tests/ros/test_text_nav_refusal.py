"""text_nav refuses commands for places the map does not have, and says why.

A real text_nav process (MiniLM ONNX) receives Corridor's 111 hand-written reference descriptions
as the map's described places (poses along the corridor, 1 m per frame: the ambiguity check
counts places within ambiguity_radius_m as one place). Out-of-map commands ("kitchen", ...) get
no goal and a reason on vpr/retrieved_places; an in-map command still gets its goal."""

from __future__ import annotations

from pathlib import Path

import pytest
from geometry_msgs.msg import PoseStamped
from lavpr_interfaces.msg import RetrievedPlace, RetrievedPlaces
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from lavpr_ros.core.descriptions import read_descriptions

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _described_places() -> RetrievedPlaces:
    table = read_descriptions(REPO / "evaluation" / "descriptions" / "corridor_ref.csv")
    msg = RetrievedPlaces()
    msg.header.frame_id = "map"
    for i, name in enumerate(sorted(table)):
        p = RetrievedPlace()
        p.place_id, p.description, p.has_pose = i, table[name], True
        p.pose.header.frame_id = "map"
        p.pose.pose.position.x = float(i)
        p.pose.pose.orientation.w = 1.0
        msg.places.append(p)
    return msg


def test_out_of_map_commands_are_refused_with_a_reason(procs, client, text_model) -> None:
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

    for n, text in enumerate(["kitchen", "take me to the toilets", "somewhere"], start=1):
        cmd.publish(String(data=text))
        client.wait_until(lambda n=n: len(answers) >= n, 30, f"answer to '{text}'")
        out = answers[-1]
        assert out.query == text and not out.goal_sent
        assert "min_score" in out.reason or "ambiguous" in out.reason, out.reason
        assert len(out.places) == 5  # the candidates are still shown
    assert not goals
    assert "no place in the map fits the command" in tn.output()  # the reason is logged too

    cmd.publish(String(data="go to the red fire extinguisher"))
    client.wait_until(lambda: len(answers) >= 4, 30, "answer to the in-map command")
    assert answers[-1].goal_sent, answers[-1].reason
    assert 15 <= answers[-1].places[0].place_id <= 22
    client.wait_until(lambda: len(goals) == 1, 30, "goal_pose")
    assert goals[0].header.frame_id == "map"
    assert tn.alive()
