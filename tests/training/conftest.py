"""Training tests run in training/.venv (torch): training/.venv/bin/python -m pytest tests/training

In any other venv (the runtime one has no torch) every module here skips with that reason.
The runtime package under src/lavpr_ros is put on sys.path so the exported models can be checked
against the runtime's own manifest reader and encoders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_RUNTIME_SRC = ROOT / "src" / "lavpr_ros"
if _RUNTIME_SRC.is_dir() and str(_RUNTIME_SRC) not in sys.path:
    sys.path.insert(0, str(_RUNTIME_SRC))


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
