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
