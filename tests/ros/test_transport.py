"""Real processes over DDS: a 640x480 image and a custom message arrive intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pubsub_peers import make_descriptor, make_image

pytestmark = pytest.mark.ros
PEERS = str(Path(__file__).with_name("pubsub_peers.py"))


def test_image_and_descriptor_cross_processes_intact(procs) -> None:
    count, seed = 5, 11
    sub = procs.start_python("sub", [PEERS, "sub", "--count", str(count)])
    sub.wait_for_line("subscriber ready", timeout=30)
    pub = procs.start_python("pub", [PEERS, "pub", "--seed", str(seed), "--count", str(count)])
    line = sub.wait_for_line("RESULT ", timeout=90)
    got = json.loads(line.split("RESULT ", 1)[1])
    assert pub.alive(), pub.output()

    assert [m["stamp"] for m in got["images"]] == [1000 + i for i in range(count)]
    for i, m in enumerate(got["images"]):
        expected = hashlib.sha256(make_image(seed + i).tobytes()).hexdigest()
        assert m["sha256"] == expected
        assert m["shape"] == [480, 640, 640 * 3]
        assert m["encoding"] == "rgb8" and m["frame_id"] == "camera_optical"
    assert len(got["descriptors"]) == count
    for i, m in enumerate(got["descriptors"]):
        arr = make_descriptor(seed + i)
        assert m["sha256"] == hashlib.sha256(arr.astype(np.float32).tobytes()).hexdigest()
        assert m["dim"] == 4096 and m["model_id"] == "test-model"


def test_process_group_leaves_no_orphans(procs) -> None:
    """A child that ignores SIGINT and spawns a grandchild is still fully stopped."""
    import os
    import time

    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('grandchild', child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    p = procs.start_python("stubborn", ["-c", script])
    line = p.wait_for_line("grandchild", timeout=20)
    grandchild = int(line.split()[1])
    p.stop(timeout=1.0)
    assert not p.alive()
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"grandchild {grandchild} survived the stop")
