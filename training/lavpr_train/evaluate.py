"""Recall@k of an exported image model, run with onnxruntime exactly as the runtime does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import data


class OrtImageModel:
    """An exported image manifest run by the runtime's own encoder (core.encoders.OnnxEncoder):
    same preprocessing, checksum check and normalisation as on the robot."""

    def __init__(self, manifest: str | Path, threads: int = 2) -> None:
        from lavpr_ros.core.encoders import OnnxEncoder

        self.encoder = OnnxEncoder(manifest, providers=["cpu"], intra_op_threads=threads)
        self.m = self.encoder.manifest.to_dict()

    def encode_paths(self, paths: Sequence[Path], batch: int = 32) -> np.ndarray:
        out = [
            self.encoder.encode([data.load_rgb(p) for p in paths[s : s + batch]])
            for s in range(0, len(paths), batch)
        ]
        return np.concatenate(out).astype(np.float32)


def evaluate_set(model: OrtImageModel, ds: data.RetrievalSet, ks=(1, 5, 10)) -> dict:
    t0 = time.perf_counter()
    m = model.encode_paths(ds.ref_paths)
    q = model.encode_paths(ds.query_paths)
    rec = data.recall_at_k(m, q, ds.positives, ks)
    secs = time.perf_counter() - t0
    n = len(ds.ref_paths) + len(ds.query_paths)
    return {
        "dataset": ds.name,
        "queries": len(ds.query_paths),
        "map": len(ds.ref_paths),
        **{f"R@{k}": round(v, 4) for k, v in rec.items()},
        "seconds": round(secs, 1),
        "ms_per_image": round(1000 * secs / n, 1),
    }


def evaluate_manifest(
    manifest: str | Path,
    datasets: Sequence[str] = ("corridor", "nordland"),
    threads: int = 2,
    nordland_start: int = 0,
    nordland_stop: int | None = None,
) -> list[dict]:
    model = OrtImageModel(manifest, threads)
    results = []
    for name in datasets:
        ds = (
            data.corridor()
            if name == "corridor"
            else data.nordland(1, nordland_start, nordland_stop)
        )
        r = evaluate_set(model, ds)
        print(f"{model.m['model_id']} {r}", flush=True)
        results.append(r)
    return results
