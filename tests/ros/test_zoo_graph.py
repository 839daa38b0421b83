"""A published-architecture model (SALAD layout, small random-weight DINOv2 trunk) imported
with ``lavpr-train import-model`` runs in the real graph: vpr_encoder -> place_map over DDS.

The import needs torch, which the runtime venv lacks: it runs in the training venv
(LAVPR_TRAIN_PYTHON, else training/.venv/bin/python); the test skips without one."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from lavpr_interfaces.srv import SaveMap

from lavpr_ros.graph.description import default_config_file
from lavpr_ros.graph.online_run import derived_config, play_and_wait, running_graph

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MAKE_CHECKPOINT = """
import sys, torch
from zoo_helpers import random_state
torch.save(random_state("salad", {"vit_depth": 2, "vit_dim": 64}), sys.argv[1])
"""


def _train_python() -> Path:
    cand = os.environ.get("LAVPR_TRAIN_PYTHON") or str(REPO / "training/.venv/bin/python")
    if not Path(cand).is_file():
        pytest.skip(f"no training venv at {cand} (set LAVPR_TRAIN_PYTHON) to import a model")
    return Path(cand)


@pytest.fixture(scope="module")
def salad_model(tmp_path_factory) -> Path:
    py, tmp = _train_python(), tmp_path_factory.mktemp("zoo")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            str(REPO / p) for p in ("training", "src/lavpr_ros", "tests/training")
        ),
        "OMP_NUM_THREADS": "2",
    }
    ckpt = tmp / "dino_salad.ckpt"
    subprocess.run([py, "-c", MAKE_CHECKPOINT, str(ckpt)], env=env, check=True, timeout=300)
    out = tmp / "salad-small"
    cmd = [py, "-m", "lavpr_train.cli", "import-model", "--arch", "salad", "--checkpoint"]
    cmd += [str(ckpt), "--out", str(out), "--set", "vit_depth=2", "--set", "vit_dim=64"]
    subprocess.run(cmd, env=env, check=True, timeout=300)
    return out


def test_imported_model_in_graph(procs, client, data_root, tmp_path, salad_model) -> None:
    manifest = yaml.safe_load((salad_model / "manifest.yaml").read_text())
    config = derived_config(
        default_config_file(),
        {
            "vpr_encoder": {
                "encoder": str(salad_model),
                "max_frame_age_s": 0.0,
                "reliable_input": True,
            },
            "place_map": {"reliable_input": True, "pose_wait_s": 5.0},
        },
        tmp_path / "p.yaml",
    )
    map_dir = tmp_path / "map"
    args = {"config_file": str(config), "map_path": str(map_dir), "start_text_nav": "false"}
    with running_graph(procs, args):
        play_and_wait(procs, "nordland", 1000, 20, 10.0, 2.0, extra=["-p", "traverses:=summer"])
        # The encoder may still be working through the frames (the map's model is confirmed
        # after 3 descriptors): ask until the map has places.
        deadline = time.monotonic() + 60
        saved = client.call(SaveMap, "save_map", SaveMap.Request())
        while not saved.success and time.monotonic() < deadline:
            time.sleep(1.0)
            saved = client.call(SaveMap, "save_map", SaveMap.Request())
        assert saved.success and saved.num_places == 20, saved.message
    meta = yaml.safe_load((map_dir / "manifest.yaml").read_text())
    assert meta["model_id"] == manifest["model_id"] == "salad-small"
    assert meta["dim"] == manifest["output_dim"] == 64 * 128 + 256
