"""Recall@k of an exported image model, run with onnxruntime exactly as the runtime does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import data
from .export.manifest import read_manifest


class OrtImageModel:
    """Minimal onnxruntime runner for an image manifest (runtime preprocessing recipe)."""

    def __init__(self, manifest: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        p = Path(manifest)
        self.directory = p if p.is_dir() else p.parent
        self.m = read_manifest(p)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.directory / self.m["file"]), so, providers=["CPUExecutionProvider"]
        )

    def encode_paths(self, paths: Sequence[Path], batch: int = 32) -> np.ndarray:
        out = []
        for s in range(0, len(paths), batch):
            imgs = [data.load_rgb(p) for p in paths[s : s + batch]]
            x = data.preprocess(imgs, tuple(self.m["input_size"]), self.m["mean"], self.m["std"])
            out.append(self.session.run([self.m["output_name"]], {self.m["input_name"]: x})[0])
        d = np.concatenate(out).astype(np.float32)
        return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def evaluate_set(model: OrtImageModel, ds: data.RetrievalSet, ks=(1, 5, 10)) -> dict:
    t0 = time.perf_counter()
    m = model.encode_paths(ds.map_paths)
    q = model.encode_paths(ds.query_paths)
    rec = data.recall_at_k(m, q, ds.positives, ks)
    secs = time.perf_counter() - t0
    n = len(ds.map_paths) + len(ds.query_paths)
    return {
        "dataset": ds.name,
        "queries": len(ds.query_paths),
        "map": len(ds.map_paths),
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
