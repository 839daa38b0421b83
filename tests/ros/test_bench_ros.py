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


def test_bench_ros_with_a_preloaded_map(data_root, tmp_path) -> None:
    """--map: place_map starts from a saved map (of the encoder's model: place_map refuses
    another model at configure, and the run would never start)."""
    import numpy as np

    from lavpr_ros.core.datasets import nordland
    from lavpr_ros.core.encoders import create_encoder
    from lavpr_ros.core.images import load_image
    from lavpr_ros.core.place_map import PlaceMap

    enc = create_encoder("patchnorm")
    paths = nordland().ref_paths[2000:2200]  # other places than the bench's 1000..
    m = PlaceMap(enc.dim, enc.model_id)
    m.add_batch(enc.encode([load_image(p) for p in paths]), np.arange(200) / 10.0)
    m.save(tmp_path / "map")
    out = tmp_path / "bench.json"
    args = ["bench", "ros", "--encoders", "patchnorm", "--rates", "20", "--frames", "25"]
    args += ["--image-size", "320x240", "--map", str(tmp_path / "map"), "--json", str(out)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["map"]["places"] == 200
    (run,) = res["runs"]
    assert run["sent"] == 50 and 0 < run["encoded"] <= 50
