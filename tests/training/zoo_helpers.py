"""Shared helpers of the zoo tests: official-layout checkpoints with random weights, and the
parity / fp16 / Corridor top-1 checks of an imported model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from lavpr_train import data
from lavpr_train.data import IMAGENET_MEAN, IMAGENET_STD, load_rgb, preprocess
from lavpr_train.export.manifest import read_manifest
from lavpr_train.export.variants import export_fp16
from lavpr_train.zoo.importer import build_model, fix_input_size, import_model, torch_descriptors
from lavpr_train.zoo.random_weights import random_state


def corridor_subset(n_ref: int = 12, n_query: int = 6) -> tuple[list, list, list[set[int]]]:
    """Every k-th Corridor reference and query frame (real images) with their positives."""
    ds = data.corridor()
    r_idx = list(range(0, len(ds.ref_paths), len(ds.ref_paths) // n_ref))[:n_ref]
    q_idx = list(range(3, len(ds.query_paths), len(ds.query_paths) // n_query))[:n_query]
    refs = [load_rgb(ds.ref_paths[i]) for i in r_idx]
    queries = [load_rgb(ds.query_paths[i]) for i in q_idx]
    return refs, queries, [ds.positives[i] for i in q_idx]


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def check_imported(name: str, options: dict, ckpt: Path, out: Path, size=None) -> dict:
    """Import, then compare ONNX Runtime (fp32 and fp16) with the PyTorch model on real
    Corridor frames: descriptors and top-1 retrieval."""
    folder = import_model(name, ckpt, out, options, size)
    m = read_manifest(folder)
    model, _ = build_model(name, options)
    model.load_state_dict(random_state(name, options))
    fix_input_size(model, tuple(m["input_size"]))
    refs, queries, _ = corridor_subset()
    batch = preprocess(
        refs + queries, tuple(m["input_size"]), IMAGENET_MEAN, IMAGENET_STD, m["interpolation"]
    )
    ref = _norm(torch_descriptors(model, batch))
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = _norm(sess.run(None, {"images": batch})[0])
    fp16 = export_fp16(folder, out.parent, f"{out.name}-fp16", tolerance=2e-3)
    s16 = ort.InferenceSession(str(fp16 / "model.onnx"), providers=["CPUExecutionProvider"])
    half = _norm(s16.run(None, {"images": batch})[0])
    n = len(refs)

    def top1(d: np.ndarray) -> np.ndarray:
        return (d[n:] @ d[:n].T).argmax(axis=1)

    return {
        "manifest": m,
        "fp32_err": float(np.abs(ref - got).max()),
        "fp16_err": float(np.abs(ref - half).max()),
        "top1_torch": top1(ref),
        "top1_onnx": top1(got),
        "top1_fp16": top1(half),
    }


def assert_parity(r: dict) -> None:
    assert r["fp32_err"] < 1e-4, r["fp32_err"]
    assert r["fp16_err"] < 2e-3, r["fp16_err"]
    assert (r["top1_torch"] == r["top1_onnx"]).all()
    assert (r["top1_torch"] == r["top1_fp16"]).all()


__all__ = ["assert_parity", "check_imported", "corridor_subset", "random_state"]
