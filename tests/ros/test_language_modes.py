"""LaVPR modes through the real nodes: a text command in cross_modal mode reaches a place that
nobody described, by its image descriptor (vpr_encoder -> place_map -> query_places <- text_nav).

The cross-modal model (MiniLM + a projection head into mobilenetv2-gem-imagenet's descriptor
space) is trained for the test by the training workspace on the first 40 Corridor reference
frames and their hand-written descriptions (evaluation/descriptions/corridor_ref.csv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from geometry_msgs.msg import PoseStamped
from lavpr_interfaces.msg import RetrievedPlaces
from lavpr_interfaces.srv import QueryPlaces
from std_msgs.msg import String

from lavpr_ros.core.descriptions import read_descriptions
from lavpr_ros.graph.description import default_config_file
from lavpr_ros.graph.online_run import derived_config, play_and_wait, running_graph

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "training" / ".venv" / "bin" / "lavpr-train"
COUNT, TARGET = 40, 24


@pytest.fixture(scope="module")
def cross_modal_model(tmp_path_factory, image_model, data_root) -> Path:
    if not TRAIN.exists():
        pytest.skip("training/.venv absent: `training/setup.sh` builds it")
    out = tmp_path_factory.mktemp("xmodal")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LAVPR_DATA": str(data_root)}
    subprocess.run(
        [
            str(TRAIN),
            "lang-align",
            "--out",
            str(out),
            "--model-id",
            "xm",
            "--threads",
            "1",
            "--image-model",
            str(image_model.parent),
            "--pair",
            f"{data_root / 'corridor' / 'ref'}:{REPO / 'evaluation/descriptions/corridor_ref.csv'}",
            "--train-frames",
            f"0:{COUNT}",
            "--epochs",
            "150",
        ],
        check=True,
        env=env,
        timeout=600,
        capture_output=True,
    )
    return out / "xm"


def test_text_command_finds_an_undescribed_place_cross_modal(
    procs, client, tmp_path, image_model, cross_modal_model, data_root
) -> None:
    config = derived_config(
        default_config_file(),
        {
            "vpr_encoder": {"max_frame_age_s": 0.0, "reliable_input": True},
            "place_map": {"cross_modal_model": str(cross_modal_model), "reliable_input": True},
            "text_nav": {"mode": "cross_modal", "min_score": 0.0, "min_margin": 0.0},
        },
        tmp_path / "p.yaml",
    )
    goals = client.subscribe(PoseStamped, "goal_pose")
    retrieved = client.subscribe(RetrievedPlaces, "vpr/retrieved_places")
    command = read_descriptions(REPO / "evaluation/descriptions/corridor_ref.csv")[
        f"{TARGET:07d}.jpg"
    ]
    args = {"config_file": str(config), "image_model": str(image_model)}
    with running_graph(procs, args):
        play_and_wait(procs, "corridor", 0, COUNT, 5.0, 2.0, extra=["-p", "traverses:=ref"])
        # No place has a description: text retrieval has nothing, cross_modal still finds one.
        direct = client.call(
            QueryPlaces, "query_places", QueryPlaces.Request(text=command, mode="cross_modal")
        )
        assert direct.success, direct.message
        assert abs(int(direct.places[0].place_id) - TARGET) <= 3
        assert all(p.description == "" for p in direct.places)
        no_text = client.call(
            QueryPlaces, "query_places", QueryPlaces.Request(text=command, mode="text")
        )
        assert not no_text.success and "text_model" in no_text.message

        cmd = client.publisher(String, "text_command")
        client.wait_for_subscribers(cmd)
        cmd.publish(String(data=command))
        client.wait_until(lambda: len(retrieved) >= 1, 30, "retrieved places")
        answer = retrieved[-1]
        assert answer.mode == "cross_modal" and answer.goal_sent, answer.reason
        best = answer.places[0]
        assert best.place_id == direct.places[0].place_id and best.description == ""
        client.wait_until(lambda: len(goals) >= 1, 10, "goal_pose")
        assert goals[0].pose.position.x == pytest.approx(best.pose.pose.position.x)
        # fusion is not configured: a clear refusal, the node keeps serving.
        bad = client.call(QueryPlaces, "query_places", QueryPlaces.Request(text="x", mode="fusion"))
        assert not bad.success and "fusion_model" in bad.message
