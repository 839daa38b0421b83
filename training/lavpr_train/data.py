"""Datasets and the runtime's exact image preprocessing (numpy + Pillow, no torch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .paths import dataset_dir

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def preprocess(
    images: Sequence[np.ndarray],
    input_size: tuple[int, int] = (224, 224),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> np.ndarray:
    """What the runtime does: RGB uint8 -> Pillow bilinear (or bicubic) resize to (h, w) ->
    /255 -> (x - mean) / std -> NCHW float32."""
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[
        interpolation
    ]
    h, w = input_size
    m = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
    s = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
    out = np.empty((len(images), 3, h, w), dtype=np.float32)
    for i, rgb in enumerate(images):
        img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
        if img.size != (w, h):
            img = img.resize((w, h), resample)
        x = np.asarray(img, dtype=np.float32) / 255.0
        out[i] = ((x - m) / s).transpose(2, 0, 1)
    return out


@dataclass
class RetrievalSet:
    """Map (database) and query image paths with, per query, the set of correct map indices."""

    name: str
    map_paths: list[Path]
    query_paths: list[Path]
    positives: list[set[int]]


def corridor() -> RetrievalSet:
    root = dataset_dir("corridor")
    refs = sorted((root / "ref").glob("*.jpg"))
    queries = sorted((root / "query").glob("*.jpg"))
    gt = json.loads((root / "ground_truth.json").read_text())
    positives: list[set[int]] = [set() for _ in queries]
    for row in gt:
        positives[int(row["query"])] = {int(j) for j in row["positives"]}
    return RetrievalSet("corridor", refs, queries, positives)


def nordland_pairs() -> tuple[list[Path], list[Path]]:
    """Frame-aligned (summer, winter) paths: index i is the same place in both seasons."""
    root = dataset_dir("nordland")
    summer = sorted((root / "summer").glob("*.png"))
    names = [p.name for p in summer]
    winter = [root / "winter" / n for n in names]
    missing = [p for p in winter if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"nordland winter frames missing, e.g. {missing[0]}")
    return summer, winter


def nordland(tolerance: int = 1, start: int = 0, stop: int | None = None) -> RetrievalSet:
    """Winter queries against the summer map for frames ``[start, stop)``, +-``tolerance``."""
    summer, winter = nordland_pairs()
    summer, winter = summer[start:stop], winter[start:stop]
    n = len(summer)
    positives = [set(range(max(0, i - tolerance), min(n, i + tolerance + 1))) for i in range(n)]
    suffix = "" if (start, stop) == (0, None) else f"[{start}:{stop}]"
    return RetrievalSet(f"nordland{suffix}", summer, winter, positives)


def recall_at_k(
    map_desc: np.ndarray,
    query_desc: np.ndarray,
    positives: Sequence[set[int]],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[int, float]:
    """Recall@k by cosine similarity (descriptors L2-normalised here)."""

    def _norm(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    sims = _norm(query_desc) @ _norm(map_desc).T
    kmax = min(max(ks), sims.shape[1])
    top = np.argsort(-sims, axis=1, kind="stable")[:, :kmax]
    out = {}
    for k in ks:
        hits = [bool(set(top[i, :k].tolist()) & positives[i]) for i in range(len(positives))]
        out[k] = float(np.mean(hits)) if hits else 0.0
    return out
