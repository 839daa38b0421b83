"""Datasets, image preprocessing and recall@K for training: the runtime core's own code.

Imported from ``lavpr_ros.core`` (installed editable into the training venv), never copied, so a
model is trained, exported and evaluated with exactly what the robot runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from lavpr_ros.core.datasets import ImagePairDataset as RetrievalSet
from lavpr_ros.core.datasets import corridor as _corridor
from lavpr_ros.core.datasets import nordland as _nordland
from lavpr_ros.core.encoders import preprocess_images
from lavpr_ros.core.images import load_image as load_rgb
from lavpr_ros.core.metrics import recall_at_k as _recall_ranked

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RetrievalSet",
    "corridor",
    "load_rgb",
    "nordland",
    "nordland_pairs",
    "preprocess",
    "recall_at_k",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess(
    images: Sequence[np.ndarray],
    input_size: tuple[int, int] = (224, 224),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> np.ndarray:
    """The runtime's preprocessing (core.encoders.preprocess_images) with ImageNet defaults."""
    return preprocess_images(images, tuple(input_size), mean, std, interpolation=interpolation)


def corridor() -> RetrievalSet:
    return _corridor()


def nordland_pairs() -> tuple[list[Path], list[Path]]:
    """Frame-aligned (summer, winter) paths: index i is the same place in both seasons."""
    ds = _nordland()
    return list(ds.ref_paths), list(ds.query_paths)


def nordland(tolerance: int = 1, start: int = 0, stop: int | None = None) -> RetrievalSet:
    """Winter queries against the summer map for frames ``[start, stop)``, +-``tolerance``."""
    ds = _nordland(tolerance=tolerance)
    if (start, stop) == (0, None):
        return replace(ds, name="nordland")
    sub = ds.subset(start, None if stop is None else stop - start)
    return replace(sub, name=f"nordland[{start}:{stop}]")


def recall_at_k(
    map_desc: np.ndarray,
    query_desc: np.ndarray,
    positives: Sequence[set[int]],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[int, float]:
    """Recall@k by cosine similarity of descriptors (ranking here, the metric from core)."""

    def _norm(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    sims = _norm(query_desc) @ _norm(map_desc).T
    kmax = min(max(ks), sims.shape[1])
    top = np.argsort(-sims, axis=1, kind="stable")[:, :kmax]
    rec = _recall_ranked(top, positives, ks)
    return {int(k): rec[f"recall@{k}"] for k in ks}
