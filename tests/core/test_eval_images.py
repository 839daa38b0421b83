"""The real ``lavpr eval-images`` command on the shared Corridor and Nordland data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lavpr_ros.core.data_location import DataNotFoundError, dataset_dir

SRC = Path(__file__).resolve().parents[2] / "src" / "lavpr_ros"


def _need(name: str) -> None:
    try:
        dataset_dir(name)
    except DataNotFoundError as exc:
        pytest.skip(f"dataset '{name}' not available (set LAVPR_DATA): {exc}")


def _run(args: list[str], out: Path, timeout: float = 600) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "lavpr_ros.cli.main", "eval-images", *args, "--json"]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout  # exactly one JSON object on stdout
    result = json.loads(lines[0])
    assert json.loads((out / "metrics.json").read_text()) == result
    assert (out / "pr_curve.png").stat().st_size > 1000
    return result


def test_corridor_single_frame_and_sequence(tmp_path: Path) -> None:
    _need("corridor")
    single = _run(["--dataset", "corridor"], tmp_path / "single")
    assert single["num_queries"] == 111 and single["encoder"] == "patchnorm-64x32-p8"
    for key in ("recall@1", "recall@5", "recall@10", "auc_pr", "recall_at_100p"):
        assert 0.0 <= single[key] <= 1.0
    assert "sequence_recall@1" not in single
    # Measured 0.369 / 0.631 / 0.730; far above chance (about 5/111).
    assert single["recall@1"] >= 0.33
    assert single["recall@1"] <= single["recall@5"] <= single["recall@10"]
    seq = _run(
        ["--dataset", "corridor", "--sequence-length", "10", "--no-contrast"], tmp_path / "seq"
    )
    # Corridor is densely sampled, so raw-cosine sequences help (measured 0.586 at L=10).
    assert seq["sequence_recall@1"] >= 0.53
    assert seq["sequence_recall@1"] > single["recall@1"]
    assert seq["latency_ms"]["p50"] > 0


@pytest.mark.slow
def test_nordland_full_traverse_sequence_recall(tmp_path: Path) -> None:
    """The acceptance target: winter vs summer, all 3576 frames, ±1 frame, L=20."""
    _need("nordland")
    res = _run(["--dataset", "nordland", "--sequence-length", "20", "--quiet"], tmp_path / "n")
    assert res["num_queries"] == 3576
    assert res["sequence_recall@1"] >= 0.85
    assert res["recall@1"] < 0.2  # single frames really are hard here: sequences do the work


def test_nordland_subset_runs(tmp_path: Path) -> None:
    _need("nordland")
    res = _run(
        ["--dataset", "nordland", "--start", "1000", "--limit", "300", "--sequence-length", "20"],
        tmp_path / "sub",
    )
    assert res["num_queries"] == 300 and res["dataset"].endswith("[1000:1300]")
    assert res["sequence_recall@1"] >= 0.84  # measured 0.887 (single frame 0.373)
    assert res["sequence_recall@1"] > res["recall@1"] + 0.3
