"""``lavpr bench core --onnx-model DIR --model-only``: per-image latency and memory of one
model at its own input size, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lavpr_ros.bench import core as bench_cmd
from lavpr_ros.cli.main import main


def test_model_only_writes_latency_and_memory(tmp_path: Path, capsys) -> None:
    model = bench_cmd.build_conv_model(tmp_path / "m", size=64).parent
    out = tmp_path / "r.json"
    args = ["bench", "core", "--onnx-model", str(model), "--model-only", "--json", str(out)]
    assert main(args) == 0
    r = json.loads(out.read_text())
    assert r["input_size"] == [64, 64] and r["threads"] == 1
    assert r["ms_per_image_median"] > 0 and r["ms_per_image_p90"] >= r["ms_per_image_median"]
    assert r["peak_rss_mb"] > 0 and r["onnx_mb"] > 0
    assert "ms/image" in capsys.readouterr().out


def test_model_only_needs_a_model() -> None:
    with pytest.raises(SystemExit, match="needs --onnx-model"):
        main(["bench", "core", "--model-only"])
