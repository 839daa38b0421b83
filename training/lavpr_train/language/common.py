"""Shared pieces of the language trainers: description CSVs, frozen features, masks, losses."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

IMAGE_COLUMNS = ("image_path", "image", "image_name", "name", "filename", "file", "path")
TEXT_COLUMNS = ("description", "caption", "text")


def read_descriptions(path: str | Path) -> dict[str, str]:
    """LaVPR layout (``image_path,description``, or two columns without header) keyed by the
    image file name; the runtime's ``lavpr_ros.core.descriptions`` reads the same files."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"description CSV not found: {p}")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        return {}
    head = [c.strip().lower() for c in rows[0]]
    img, txt = 0, 1
    if head[0] in IMAGE_COLUMNS or any(h in TEXT_COLUMNS for h in head):
        img = next(i for i, h in enumerate(head) if h in IMAGE_COLUMNS)
        txt = next(i for i, h in enumerate(head) if h in TEXT_COLUMNS)
        rows = rows[1:]
    out: dict[str, str] = {}
    for r in rows:
        text = r[txt].strip()
        if text:
            out[Path(r[img].strip().replace("\\", "/")).name] = text
    return out


def offline_transformers() -> None:
    from ..export.text import _offline_transformers

    _offline_transformers()


def image_features(manifest_dir: str | Path, paths: Sequence[Path], batch: int = 32) -> np.ndarray:
    """Descriptors of a frozen exported image model (onnxruntime, the runtime's preprocessing)."""
    import onnxruntime as ort

    from ..data import load_rgb, preprocess
    from ..export.manifest import read_manifest

    m = read_manifest(manifest_dir)
    d = Path(manifest_dir)
    d = d if d.is_dir() else d.parent
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(torch.get_num_threads())
    sess = ort.InferenceSession(str(d / m["file"]), so, providers=["CPUExecutionProvider"])
    out = []
    for s in range(0, len(paths), batch):
        x = preprocess(
            [load_rgb(p) for p in paths[s : s + batch]],
            tuple(m["input_size"]),
            m.get("mean", (0.485, 0.456, 0.406)),
            m.get("std", (0.229, 0.224, 0.225)),
        )
        out.append(sess.run([m["output_name"]], {m["input_name"]: x})[0])
    f = np.concatenate(out).astype(np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def text_features(manifest_dir: str | Path, texts: Sequence[str]) -> np.ndarray:
    """Embeddings of an exported text model (tokenizers file + onnxruntime)."""
    from ..export.manifest import read_manifest
    from ..export.text import ort_embeddings

    m = read_manifest(manifest_dir)
    d = Path(manifest_dir)
    d = d if d.is_dir() else d.parent
    f = ort_embeddings(d / m["file"], d / m["tokenizer"], list(texts)).astype(np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def model_id_of(manifest_dir: str | Path) -> str:
    from ..export.manifest import read_manifest

    return str(read_manifest(manifest_dir)["model_id"])


def frame_positive_mask(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """(len(a), len(b)) True where frame indices are within ``radius`` (same place)."""
    return (a[:, None] - b[None, :]).abs() <= radius


def info_nce(sim: torch.Tensor, pos: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive InfoNCE over rows (every column not positive is a negative)."""
    logp = torch.log_softmax(sim / temperature, dim=1)
    n = pos.sum(1).clamp(min=1)
    has = pos.any(1)
    return -((logp * pos).sum(1) / n)[has].mean()


def multi_similarity(
    sim: torch.Tensor,
    pos: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
) -> torch.Tensor:
    """Multi-similarity loss (Wang et al. 2019) over a (rectangular) similarity matrix."""
    neg = ~pos
    pos_term = torch.log1p((torch.exp(-alpha * (sim - base)) * pos).sum(1)) / alpha
    neg_term = torch.log1p((torch.exp(beta * (sim - base)) * neg).sum(1)) / beta
    return (pos_term + neg_term)[pos.any(1)].mean()


def recall_at_1(sim: np.ndarray, positives: Sequence[set[int]]) -> float:
    top = np.argmax(sim, axis=1)
    ok = [int(t) in p for t, p in zip(top, positives, strict=True) if p]
    return float(np.mean(ok)) if ok else 0.0


def corridor_positives(n_query: int) -> list[set[int]]:
    import json

    from ..paths import dataset_dir

    gt = json.loads((dataset_dir("corridor") / "ground_truth.json").read_text())
    pos: list[set[int]] = [set() for _ in range(n_query)]
    for row in gt:
        if int(row["query"]) < n_query:
            pos[int(row["query"])] = {int(j) for j in row["positives"]}
    return pos
