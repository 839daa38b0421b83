"""Topic launch arguments: a robot's own camera and odometry names reach every reader, over DDS,
without editing a file."""

from __future__ import annotations

import pytest
from lavpr_interfaces.msg import LoopClosure, PlaceDescriptor

from lavpr_ros.graph.description import default_config_file
from lavpr_ros.graph.online_run import derived_config, play_and_wait, running_graph

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_image_and_odom_topics_remapped_from_launch_arguments(
    procs, client, data_root, tmp_path
) -> None:
    config = derived_config(
        default_config_file(),
        {
            "vpr_encoder": {"max_frame_age_s": 0.0, "reliable_input": True, "encoder": "patchnorm"},
            "place_map": {"reliable_input": True, "pose_wait_s": 5.0},
        },
        tmp_path / "p.yaml",
    )
    closures = client.subscribe(LoopClosure, "vpr/loop_closure")
    descriptors = client.subscribe(PlaceDescriptor, "vpr/descriptor")
    args = {
        "config_file": str(config),
        "start_text_nav": "false",
        "image_topic": "/front/color/image_raw",
        "odom_topic": "/wheel/odom",
    }
    with running_graph(procs, args):
        # The player publishes the robot's names; it waits for vpr_encoder and place_map to
        # read them, so this only plays once the remapping is in place.
        play_and_wait(
            procs,
            "nordland",
            1000,
            30,
            20.0,
            2.0,
            extra=["-r", "camera/image_raw:=/front/color/image_raw", "-r", "odom:=/wheel/odom"],
        )
    # Images reached the encoder through the remapped camera topic, to the last frame.
    assert descriptors and max(d.header.stamp.sec for d in descriptors) == 1059
    # Poses came through the remapped odometry: the revisits close loops with poses.
    assert len(closures) >= 3 and all(m.has_poses for m in closures)
