"""Sequence-level positives/negatives on a frame-aligned route (SeqMatchNet-style mining).

Window i of one traverse and window j of the other show the same place when their end frames are
within ``pos_tol`` frames; they are *true negatives* only when ``|i - j| > neg_tol`` (default: at
least one sequence length, so a negative shares no frame with the query's place window). Frames in
between are ignored: they overlap the query sequence and are neither.
"""

from __future__ import annotations

import torch


def negative_mask(q_idx: torch.Tensor, r_idx: torch.Tensor, neg_tol: int) -> torch.Tensor:
    """(Q, R) bool: reference window r is a true negative of query window q."""
    return (q_idx[:, None] - r_idx[None, :]).abs() > neg_tol


def positive_mask(q_idx: torch.Tensor, r_idx: torch.Tensor, pos_tol: int) -> torch.Tensor:
    return (q_idx[:, None] - r_idx[None, :]).abs() <= pos_tol


def mine(
    q_desc: torch.Tensor,
    r_desc: torch.Tensor,
    q_idx: torch.Tensor,
    r_idx: torch.Tensor,
    pos_tol: int,
    neg_tol: int,
    num_neg: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best (closest) positive and the ``num_neg`` hardest true negatives of each query.

    Distances are the exported descriptors' squared L2 (= the training distance of the model's
    mode, see model.py). Returns reference indices ``(pos (Q,), neg (Q, num_neg))``; raises when a
    query has no positive or too few negatives.
    """
    d = torch.cdist(q_desc, r_desc).pow(2)
    pos_m = positive_mask(q_idx, r_idx, pos_tol)
    neg_m = negative_mask(q_idx, r_idx, neg_tol)
    if not pos_m.any(dim=1).all():
        raise ValueError("a query window has no positive reference window")
    if int(neg_m.sum(dim=1).min()) < num_neg:
        raise ValueError(f"a query window has fewer than {num_neg} true negatives")
    inf = torch.tensor(float("inf"), device=d.device)
    pos = torch.where(pos_m, d, inf).argmin(dim=1)
    neg = torch.where(neg_m, d, inf).topk(num_neg, dim=1, largest=False).indices
    return pos, neg
