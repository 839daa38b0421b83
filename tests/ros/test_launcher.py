"""`lavpr launch` starts every node as its own process; Ctrl-C stops them all cleanly."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_ctrl_c_stops_every_node(procs, tmp_path) -> None:
    launch = procs.start(
        "launch",
        [
            sys.executable,
            "-m",
            "lavpr_ros.cli.main",
            "launch",
            "start_text_nav:=false",
            f"map_path:={tmp_path / 'map'}",
        ],
    )
    for name in ("vpr_encoder", "place_map"):
        launch.wait_for_line(f"[{name}] ready", timeout=60)
    nodes = _children(launch.pid)
    assert len(nodes) == 2 and all(_alive(p) for p in nodes)
    os.kill(launch.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    launch.popen.wait(timeout=30)
    assert launch.popen.returncode == 0, launch.output()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in nodes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in nodes)
    assert "lavpr launch: stopping" in launch.output()
