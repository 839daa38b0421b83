"""``lavpr bench core``: the quick run produces complete, positive numbers; naive twins agree."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lavpr_ros.bench import core as bench_core
from lavpr_ros.cli import bench_cmd
from lavpr_ros.cli.main import main
from lavpr_ros.core.manifest import load_manifest
from lavpr_ros.core.patchnorm import PatchNormEncoder


def test_naive_patchnorm_twin_matches_encoder() -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    imgs.append(np.full((40, 80, 3), 9, np.uint8))  # featureless image: same row in both
    enc = PatchNormEncoder()
    np.testing.assert_allclose(bench_core.naive_patchnorm(imgs, enc), enc.encode(imgs), atol=1e-4)


def test_built_conv_model_runs(tmp_path: Path) -> None:
    from lavpr_ros.core.encoders import OnnxEncoder

    path = bench_core.build_conv_model(tmp_path, size=64)
    enc = OnnxEncoder(path)
    assert load_manifest(path).output_dim == enc.dim == 128
    out = enc.encode([np.zeros((30, 40, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)])
    assert out.shape == (2, 128) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_sizes_parsing() -> None:
    parser = bench_cmd.argparse.ArgumentParser()
    bench_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "core", "--sizes", "1000,5e3"])
    assert bench_core._parse_sizes(args) == [1000, 5000]
    args = parser.parse_args(["bench", "core", "--sizes", "ten"])
    with pytest.raises(ValueError, match="--sizes"):
        bench_core._parse_sizes(args)
    assert bench_core._parse_sizes(parser.parse_args(["bench", "core", "--quick"])) == [1000, 10000]
    # The notation the help advertises is accepted.
    args = parser.parse_args(["bench", "core", "--sizes", "1k,10K,2.5k,1M"])
    assert bench_core._parse_sizes(args) == [1000, 10000, 2500, 1_000_000]


def _positive(row: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        assert isinstance(row[key], int | float) and row[key] > 0, (key, row)


@pytest.mark.slow
def test_bench_core_quick_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "core", "--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"machine", "settings", "encoders", "search", "sequence", "memory"} <= set(res)
    assert res["settings"]["sizes"] == [1000, 10000]

    pn, onnx_row = res["encoders"]
    _positive(pn, ("images_per_s", "ms_per_batch", "naive_images_per_s", "speedup_vs_naive"))
    assert pn["max_abs_diff_vs_naive"] < 1e-4
    _positive(onnx_row, ("images_per_s", "ms_per_batch", "ms_per_image_batch1"))
    assert onnx_row["provider"] == "CPUExecutionProvider"

    rows = {(r["size"], r["index"]): r for r in res["search"]}
    for n in (1000, 10000):
        for kind in ("naive-numpy", "flat", "hnsw", "ivfpq"):
            r = rows[(n, kind)]
            assert "skipped" not in r
            _positive(r, ("p50_ms", "p95_ms", "recall_at_5"))
            assert r["p95_ms"] >= r["p50_ms"] and 0 < r["recall_at_5"] <= 1
        for kind in ("flat", "hnsw", "ivfpq"):
            _positive(rows[(n, kind)], ("build_s", "speedup_vs_naive"))
        assert rows[(n, "flat")]["recall_at_5"] == 1.0  # exact search agrees with numpy
    assert rows[(10000, "ivfpq")]["trained"] is True
    assert rows[(1000, "ivfpq")]["trained"] is False  # below the training threshold

    kinds = {(r["size"], r["index"]) for r in res["memory"]}
    assert {(10000, "flat"), (10000, "hnsw"), (10000, "ivfpq")} <= kinds
    for r in res["memory"]:
        _positive(r, ("index_bytes_per_place", "metadata_bytes_per_place", "total_bytes_per_place"))
        assert r["descriptor_bytes_per_place"] == 4 * 512
    flat10k = next(r for r in res["memory"] if r["index"] == "flat" and r["size"] == 10000)
    assert flat10k["index_bytes_per_place"] == pytest.approx(4 * 512, rel=0.01)

    if importlib.util.find_spec("lavpr_ros.core.sequence") is not None:
        assert [r["size"] for r in res["sequence"]] == [1000, 10000]
        for r in res["sequence"]:
            _positive(r, ("ms_per_frame", "naive_ms_per_frame", "speedup_vs_naive"))
    else:
        assert res["sequence"] == [] and res["sequence_available"] is False
