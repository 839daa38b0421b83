"""Metric-learning losses over a similarity matrix with an explicit positive/ignore mask.

Masks (rather than class labels) let place recognition treat frames within the localisation
tolerance as positives and the next few frames as "neither" (they are too similar to be fair
negatives).
"""

from __future__ import annotations

import torch


def place_masks(frames: torch.Tensor, pos_radius: int = 1, ignore_radius: int = 3):
    """(positive, negative) boolean (B, B) masks from frame indices along the route."""
    d = (frames[:, None] - frames[None, :]).abs()
    eye = torch.eye(len(frames), dtype=torch.bool, device=frames.device)
    pos = (d <= pos_radius) & ~eye
    neg = d > ignore_radius
    return pos, neg


def multi_positive_info_nce(
    sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """Supervised-contrastive InfoNCE: each anchor's positives are pulled against the softmax
    over its positives and negatives (ignored pairs and itself excluded)."""
    logits = sim / temperature
    valid = pos | neg
    logits = logits.masked_fill(~valid, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = pos.sum(1)
    has = n_pos > 0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has])
    return per_anchor.mean() if has.any() else sim.sum() * 0.0


def batch_hard_triplet(
    sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float = 0.1
) -> torch.Tensor:
    """Batch-hard triplet on cosine similarity: hardest positive vs hardest negative."""
    hardest_pos = sim.masked_fill(~pos, float("inf")).min(1).values
    hardest_neg = sim.masked_fill(~neg, float("-inf")).max(1).values
    ok = pos.any(1) & neg.any(1)
    loss = torch.relu(hardest_neg - hardest_pos + margin)[ok]
    return loss.mean() if ok.any() else sim.sum() * 0.0


def triplet_from_indices(
    sim: torch.Tensor, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float = 0.1
) -> torch.Tensor:
    """Mean hinge ``relu(s(a,n) - s(a,p) + margin)`` over mined triplets (cosine similarity)."""
    if len(a) == 0:
        return sim.sum() * 0.0
    return torch.relu(sim[a, n] - sim[a, p] + margin).mean()


def multi_similarity(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float = 0.1,
) -> torch.Tensor:
    """pytorch-metric-learning's MultiSimilarityLoss on pairs mined by its MultiSimilarityMiner,
    restricted to pairs the GPS masks call positive / negative."""
    from pytorch_metric_learning.losses import MultiSimilarityLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    a1, p, a2, n = MultiSimilarityMiner(epsilon=epsilon)(embeddings, labels)
    kp, kn = pos[a1, p], neg[a2, n]
    pairs = (a1[kp], p[kp], a2[kn], n[kn])
    loss = MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)(embeddings, labels, pairs)
    return loss + embeddings.sum() * 0.0


LOSSES = ("hybrid", "triplet", "infonce", "multisimilarity")


def vpr_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    kind: str = "hybrid",
    triplet_weight: float = 0.3,
    contrastive_weight: float = 1.0,
    margin: float = 0.1,
    temperature: float = 0.07,
    miner: str = "batch_hard",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss on L2-normalised ``embeddings`` with GPS masks; returns (loss, parts).

    ``hybrid`` = ``triplet_weight`` x triplet + ``contrastive_weight`` x multi-positive InfoNCE
    (0.3 / 1.0 by default). The triplet term uses ``miner``: ``batch_hard`` (hardest positive
    and negative per anchor) or ``multisimilarity`` (pytorch-metric-learning miner)."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss '{kind}'; known: {', '.join(LOSSES)}")
    sim = embeddings @ embeddings.T
    parts: dict[str, float] = {}
    total = embeddings.sum() * 0.0
    if kind in ("hybrid", "triplet"):
        if miner == "batch_hard":
            trip = batch_hard_triplet(sim, pos, neg, margin)
        elif miner == "multisimilarity":
            from .mining import pml_triplets

            a, p, n = pml_triplets(embeddings.detach(), labels, pos, neg)
            trip = triplet_from_indices(
                sim, a.to(sim.device), p.to(sim.device), n.to(sim.device), margin
            )
        else:
            raise ValueError(f"unknown miner '{miner}' (batch_hard, multisimilarity)")
        parts["triplet"] = float(trip.detach())
        total = total + (triplet_weight if kind == "hybrid" else 1.0) * trip
    if kind in ("hybrid", "infonce"):
        nce = multi_positive_info_nce(sim, pos, neg, temperature)
        parts["infonce"] = float(nce.detach())
        total = total + (contrastive_weight if kind == "hybrid" else 1.0) * nce
    if kind == "multisimilarity":
        ms = multi_similarity(embeddings, labels, pos, neg)
        parts["multisimilarity"] = float(ms.detach())
        total = total + ms
    return total, parts
