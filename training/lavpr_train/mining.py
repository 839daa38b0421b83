"""Supervision from positions: positive/negative masks by GPS distance, place-balanced batches,
hard negatives from a faiss index over the current embeddings, online (in-batch) miners.

Pairs closer than ``pos_radius`` (25 m) are positives, farther than ``neg_radius`` (100 m)
negatives; pairs in between are ignored (too close to be fair negatives, too far to be sure
they show the same place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def gps_masks(
    xy: torch.Tensor | np.ndarray, pos_radius: float = 25.0, neg_radius: float = 100.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) boolean (B, B) masks from (B, 2) metric positions; the diagonal is
    neither."""
    xy = torch.as_tensor(xy, dtype=torch.float64)
    d = torch.cdist(xy, xy)
    eye = torch.eye(len(xy), dtype=torch.bool, device=xy.device)
    return (d <= pos_radius) & ~eye, d > neg_radius


@dataclass
class PlaceIndex:
    """Samples grouped by place label, with one representative position per place."""

    labels: np.ndarray  # (N,) place label per sample
    xy: np.ndarray  # (N, 2)

    def __post_init__(self) -> None:
        self.places, inverse = np.unique(self.labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(self.places)))[:-1]
        self.members = np.split(order, bounds)
        self.centre = np.stack([self.xy[m].mean(0) for m in self.members])

    def __len__(self) -> int:
        return len(self.places)


def hard_negative_places(
    place_embeddings: np.ndarray,
    index: PlaceIndex,
    neg_radius: float = 100.0,
    k: int = 20,
    per_place: int = 1,
) -> np.ndarray:
    """For each place, the ``per_place`` most similar *other* places in a faiss inner-product
    index over ``place_embeddings`` (one current embedding per place, e.g. of its first image)
    whose every image lies farther than ``neg_radius`` from every image of the place.
    Returns (n_places, per_place) place positions (indices into ``index.members``), -1 where
    none was found among the ``k`` nearest."""
    import faiss

    emb = np.ascontiguousarray(place_embeddings, dtype=np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    faiss_index = faiss.IndexFlatIP(emb.shape[1])
    faiss_index.add(emb)
    _, nn = faiss_index.search(emb, min(k + 1, len(emb)))
    out = np.full((len(index), per_place), -1, dtype=np.int64)
    for p, row in enumerate(nn):
        found: list[int] = []
        mine = index.xy[index.members[p]]
        for q in row:
            q = int(q)
            if q < 0 or q == p:
                continue
            theirs = index.xy[index.members[q]]
            if np.linalg.norm(mine[:, None] - theirs[None], axis=2).min() > neg_radius:
                found.append(q)
                if len(found) == per_place:
                    break
        out[p, : len(found)] = found
    return out


def place_batches(
    index: PlaceIndex,
    places_per_batch: int,
    images_per_place: int,
    rng: np.random.Generator,
    hard_negatives: np.ndarray | None = None,
    hard_fraction: float = 0.5,
    max_batches: int | None = None,
) -> list[list[int]]:
    """Sample-index batches of ``places_per_batch`` places x ``images_per_place`` images.

    With ``hard_negatives`` (from :func:`hard_negative_places`), about ``hard_fraction`` of each
    batch's places are the hard negatives of the other (seed) places, so the in-batch losses
    see them."""
    order = rng.permutation(len(index))
    n_seed = places_per_batch
    if hard_negatives is not None:
        n_seed = max(1, round(places_per_batch * (1 - hard_fraction)))
    batches = []
    for s in range(0, len(order) - n_seed + 1, n_seed):
        chosen = list(order[s : s + n_seed])
        if hard_negatives is not None:
            for p in list(chosen):
                for q in hard_negatives[p]:
                    if q >= 0 and q not in chosen and len(chosen) < places_per_batch:
                        chosen.append(int(q))
        fill = iter(rng.permutation(len(index)))
        while len(chosen) < places_per_batch:
            q = int(next(fill))
            if q not in chosen:
                chosen.append(q)
        batch: list[int] = []
        for p in chosen:
            m = index.members[p]
            pick = rng.choice(m, images_per_place, replace=len(m) < images_per_place)
            batch.extend(int(i) for i in pick)
        batches.append(batch)
        if max_batches and len(batches) >= max_batches:
            break
    return batches


def batch_hard_pairs(
    sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Online batch-hard mining: per anchor with a positive and a negative, (anchor, hardest
    positive, hardest negative) indices."""
    ok = pos.any(1) & neg.any(1)
    hp = sim.masked_fill(~pos, float("inf")).argmin(1)
    hn = sim.masked_fill(~neg, float("-inf")).argmax(1)
    a = torch.nonzero(ok).flatten()
    return a, hp[a], hn[a]


def pml_triplets(
    embeddings: torch.Tensor, labels: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, **kw
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pytorch-metric-learning's MultiSimilarityMiner on place labels, filtered by the GPS masks
    (a pair it mines must also be a positive / negative by distance)."""
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    a1, p, a2, n = MultiSimilarityMiner(**kw)(embeddings, labels)
    keep_p = pos[a1, p]
    keep_n = neg[a2, n]
    a1, p, a2, n = a1[keep_p], p[keep_p], a2[keep_n], n[keep_n]
    # pair every mined positive with a mined negative of the same anchor
    triplets = [
        (int(a), int(pp), int(nn)) for a, pp in zip(a1, p, strict=True) for nn in n[a2 == a]
    ]
    if not triplets:
        e = torch.empty(0, dtype=torch.long)
        return e, e, e
    t = torch.tensor(triplets, dtype=torch.long)
    return t[:, 0], t[:, 1], t[:, 2]
