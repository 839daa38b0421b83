"""`source scripts/env.sh` makes lavpr-train reachable (a wrapper over the training venv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _in_env(cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source {REPO / 'scripts' / 'env.sh'} && {cmd}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_lavpr_train_without_a_training_venv_says_how_to_build_one(tmp_path) -> None:
    r = _in_env("lavpr-train --help", LAVPR_TRAIN_VENV=str(tmp_path / "none"))
    assert r.returncode == 127 and "training/setup.sh" in r.stderr


def test_lavpr_train_runs_from_the_training_venv() -> None:
    venv = os.environ.get("LAVPR_TRAIN_VENV") or str(REPO / "training" / ".venv")
    if not (Path(venv) / "bin" / "lavpr-train").exists():
        pytest.skip(f"{venv} absent: `training/setup.sh` builds it")
    r = _in_env("command -v lavpr-train && lavpr-train --help", LAVPR_TRAIN_VENV=venv)
    assert r.returncode == 0, r.stderr
    assert "scripts/bin/lavpr-train" in r.stdout and "usage" in r.stdout.lower()
