"""`lavpr bench ros` runs end to end and reports its numbers (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from lavpr_ros.cli.main import main

pytestmark = pytest.mark.ros


def test_bench_ros_smoke(data_root, tmp_path) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "ros",
            "--encoders",
            "patchnorm",
            "--rates",
            "20",
            "--frames",
            "25",
            "--image-size",
            "320x240",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    res = json.loads(out.read_text())
    (run,) = res["runs"]
    assert run["sent"] == 50 and 0 < run["encoded"] <= 50
    assert run["image_to_descriptor_p50_ms"] > 0
    assert "patchnorm" in res["max_sustained_rate_hz"]
