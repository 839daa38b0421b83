"""Managed nodes: with autostart off, vpr_encoder waits unconfigured and follows the lifecycle
services (configure loads the encoder, activate subscribes the camera, deactivate stops it, a
configure that fails says why and can be retried); with autostart on it runs as a plain node."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lavpr_interfaces.msg import PlaceDescriptor
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_nodes import Diag
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


def _image(stamp: int) -> Image:
    rgb = np.random.default_rng(stamp).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = Image()
    msg.header.stamp.sec = stamp
    msg.height, msg.width, msg.encoding, msg.step = 48, 64, "rgb8", 64 * 3
    msg.data = rgb.tobytes()
    return msg


def _state(client, node: str) -> str:
    return client.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label


def _change(client, node: str, transition: int) -> bool:
    req = ChangeState.Request()
    req.transition.id = transition
    return client.call(ChangeState, f"{node}/change_state", req).success


def test_vpr_encoder_lifecycle_transitions(procs, client, tmp_path) -> None:
    node = procs.start_python(
        "vpr_encoder",
        [
            "-m",
            "lavpr_ros.nodes.vpr_encoder",
            "--ros-args",
            "-p",
            "autostart:=false",
            "-p",
            f"encoder:={tmp_path / 'missing-model'}",
            "-p",
            "reliable_input:=true",
            "-p",
            "max_frame_age_s:=0.0",
            "-p",
            "diagnostics_period_s:=0.3",
        ],
    )
    node.wait_for_line("[vpr_encoder] unconfigured", timeout=60)
    descs = client.subscribe(PlaceDescriptor, "vpr/descriptor")
    diags = client.subscribe(DiagnosticArray, "/diagnostics")
    pub = client.publisher(Image, "camera/image_raw")

    def state() -> str:
        return _state(client, "vpr_encoder")

    def change(transition: int) -> bool:
        return _change(client, "vpr_encoder", transition)

    def message() -> str:
        for arr in reversed(list(diags)):
            for st in arr.status:
                if st.name.endswith("vpr_encoder"):
                    return st.message
        return ""

    assert state() == "unconfigured"
    assert pub.get_subscription_count() == 0  # no camera subscription before activation
    # configure with a model that does not exist: refused, the reason in diagnostics.
    assert not change(Transition.TRANSITION_CONFIGURE)
    assert state() == "unconfigured"
    client.wait_until(lambda: "model not found" in message(), 10, "configure failure reason")
    # The encoder is structural (read-only at run time): a lifecycle manager restarts the node
    # with another value, as this test does next.
    res = client.call(
        SetParameters,
        "vpr_encoder/set_parameters",
        SetParameters.Request(
            parameters=[
                Parameter(
                    name="encoder",
                    value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="x"),
                )
            ]
        ),
    )
    assert not res.results[0].successful
    node.stop()

    node = procs.start_python(
        "vpr_encoder2",
        [
            "-m",
            "lavpr_ros.nodes.vpr_encoder",
            "--ros-args",
            "-p",
            "autostart:=false",
            "-p",
            "encoder:=patchnorm",
            "-p",
            "reliable_input:=true",
            "-p",
            "max_frame_age_s:=0.0",
        ],
    )
    node.wait_for_line("[vpr_encoder] unconfigured", timeout=60)
    client.wait_until(lambda: state() == "unconfigured", 30, "the new process")
    assert change(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert pub.get_subscription_count() == 0  # configured, not yet reading the camera
    assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
    node.wait_for_line("[vpr_encoder] ready", timeout=10)
    client.wait_for_subscribers(pub)
    pub.publish(_image(10))
    client.wait_until(lambda: any(d.header.stamp.sec == 10 for d in descs), 10, "descriptor")
    # deactivate: the camera subscription goes away, frames are no longer encoded.
    assert change(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    client.wait_until(lambda: pub.get_subscription_count() == 0, 10, "unsubscribed")
    pub.publish(_image(11))
    time.sleep(1.0)
    assert not any(d.header.stamp.sec == 11 for d in descs)
    # activate again: encoding resumes; cleanup and shutdown release it.
    assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
    client.wait_for_subscribers(pub)
    pub.publish(_image(12))
    client.wait_until(lambda: any(d.header.stamp.sec == 12 for d in descs), 10, "resumed")
    assert change(Transition.TRANSITION_DEACTIVATE) and change(Transition.TRANSITION_CLEANUP)
    assert state() == "unconfigured"
    assert change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN) and state() == "finalized"
    assert node.alive()


def test_text_nav_lifecycle_transitions(procs, client, text_model, tmp_path) -> None:
    from lavpr_interfaces.msg import RetrievedPlaces
    from std_msgs.msg import String

    def start(name: str, extra: list[str]):
        node = procs.start_python(
            name,
            [
                "-m",
                "lavpr_ros.nodes.text_nav",
                "--ros-args",
                "-p",
                "autostart:=false",
                "-p",
                f"text_model:={text_model.parent}",
                *extra,
            ],
        )
        node.wait_for_line("[text_nav] unconfigured", timeout=60)
        return node

    def state() -> str:
        return _state(client, "text_nav")

    def change(transition: int) -> bool:
        return _change(client, "text_nav", transition)

    # A pose-text model asked for and missing: configure fails, the node stays unconfigured.
    node = start("text_nav_bad", ["-p", f"pose_text_model:={tmp_path / 'none'}"])
    assert state() == "unconfigured"
    assert not change(Transition.TRANSITION_CONFIGURE) and state() == "unconfigured"
    node.wait_for_line("configure failed", 10)
    node.stop()

    node = start("text_nav", [])
    client.wait_until(lambda: state() == "unconfigured", 30, "the new process")
    answers = client.subscribe(RetrievedPlaces, "vpr/retrieved_places")
    cmd = client.publisher(String, "text_command")
    assert cmd.get_subscription_count() == 0  # commands are not taken before activation
    assert change(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
    client.wait_for_subscribers(cmd)
    cmd.publish(String(data="the red barn"))
    client.wait_until(lambda: len(answers) >= 1, 10, "an answer (a refusal: no places yet)")
    assert not answers[-1].goal_sent and answers[-1].reason  # refused with its reason
    assert change(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    client.wait_until(lambda: cmd.get_subscription_count() == 0, 10, "commands off")
    assert change(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert node.alive()


def test_place_map_lifecycle_keeps_the_map(procs, client, tmp_path) -> None:
    """configure loads the map, activate takes descriptors, cleanup saves before it releases,
    and the next configure loads what was saved: no transition loses places."""
    map_dir = tmp_path / "map"
    node = procs.start_python(
        "place_map",
        [
            "-m",
            "lavpr_ros.nodes.place_map",
            "--ros-args",
            "-p",
            "autostart:=false",
            "-p",
            "pose_source:=none",
            "-p",
            "model_id:=m",
            "-p",
            f"map_path:={map_dir}",
            "-p",
            "save_on_shutdown:=true",
            "-p",
            "loop_closure.keyframe_max_interval_s:=0.5",
            "-p",
            "diagnostics_period_s:=0.3",
        ],
    )
    node.wait_for_line("[place_map] unconfigured", timeout=60)
    status = Diag(client, "place_map")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")

    client.wait_until(lambda: _state(client, "place_map") == "unconfigured", 30, "started")
    assert pub.get_subscription_count() == 0
    assert _change(client, "place_map", Transition.TRANSITION_CONFIGURE)
    assert _change(client, "place_map", Transition.TRANSITION_ACTIVATE)
    client.wait_for_subscribers(pub)
    for i, stamp in enumerate((10, 11)):
        v = np.random.default_rng(i).standard_normal(16).astype(np.float32)
        msg = PlaceDescriptor(model_id="m", dim=16, descriptor=(v / np.linalg.norm(v)).tolist())
        msg.header.stamp.sec = stamp
        pub.publish(msg)
    client.wait_until(lambda: status().get("map_size") == "2", 15, "two places")
    assert _change(client, "place_map", Transition.TRANSITION_DEACTIVATE)
    client.wait_until(lambda: pub.get_subscription_count() == 0, 10, "descriptors off")
    assert _change(client, "place_map", Transition.TRANSITION_CLEANUP)
    assert (map_dir / "manifest.yaml").is_file()  # saved before it was released
    assert _change(client, "place_map", Transition.TRANSITION_CONFIGURE)
    status.msgs.clear()
    client.wait_until(lambda: status().get("map_size") == "2", 15, "the saved map loaded")
    assert node.alive()
