"""Recall@1 on the held-out Nordland test segment: SeqNet, SeqNet + re-rank, training-free matcher.

Queries are winter windows, the map the summer frames of the same segment; a query ending at frame
i is correct when the retrieved window ends within +-``tolerance`` frames (1 by default, as the
core's Nordland evaluation). Only queries with a full window (i >= L - 1) are scored, for every
method, so all numbers are over the same queries.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .data import TEST_RANGE, nordland_descriptors


def evaluate_sequence(
    encode_route,
    seq_len: int,
    test_range: tuple[int, int] = TEST_RANGE,
    shortlist_k: int = 20,
    tolerance: int = 1,
    baseline_lengths: tuple[int, ...] = (10, 20),
    cache: str | None = None,
    data: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """``encode_route(frames (N, D)) -> (N - L + 1, E)`` (the ONNX runtime encoder or torch)."""
    from lavpr_ros.core.sequence import match_sequences
    from lavpr_ros.core.sequence_encoder import (
        SequenceIndex,
        diagonal_scores,
        hierarchical_search,
    )

    summer, winter = data if data is not None else nordland_descriptors(cache)
    a, b = test_range
    ref, qry = summer[a:b], winter[a:b]
    n = len(ref)
    L = seq_len
    first = max([L, *baseline_lengths]) - 1  # same query set for every method
    qs = np.arange(first, n)

    def recall(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(pred - qs) <= tolerance))

    res: dict[str, Any] = {
        "test_range": [a, b],
        "queries": len(qs),
        "seq_len": L,
        "shortlist_k": shortlist_k,
        "tolerance": tolerance,
    }
    t0 = time.perf_counter()
    rd, qd = encode_route(ref), encode_route(qry)  # row i: window ending at i + L - 1
    res["encode_s"] = round(time.perf_counter() - t0, 2)
    sim = qd[qs - (L - 1)] @ rd.T
    res["seqnet_R@1"] = recall(np.argmax(sim, axis=1) + L - 1)
    index = SequenceIndex(rd.shape[1])
    index.add(np.arange(L - 1, n), rd)
    single = (qry @ ref.T).astype(np.float32)
    res["single_frame_R@1"] = recall(np.argmax(single[qs], axis=1))
    in_shortlist = []
    diag_pred = []
    for i in qs:
        qwin = qry[i - L + 1 : i + 1]
        h = hierarchical_search(
            qd[i - L + 1],
            index,
            shortlist_k,
            lambda ids, qwin=qwin: diagonal_scores(qwin, ref, ids),
        )
        diag_pred.append(h.index)
        in_shortlist.append(bool(np.any(np.abs(h.shortlist - i) <= tolerance)))
    res["seqnet_shortlist_hit"] = float(np.mean(in_shortlist))
    res["seqnet+diagonal_R@1"] = recall(np.array(diag_pred))
    for bl in baseline_lengths:
        results = match_sequences(single, length=bl)
        base = np.array([results[i].index for i in qs])
        res[f"training_free_L{bl}_R@1"] = recall(base)
        # hierarchical with the core matcher's own (contrast-normalised) scores as re-rank
        pred = []
        for i in qs:
            h = hierarchical_search(qd[i - L + 1], index, shortlist_k, results[i].scores)
            pred.append(h.index)
        res[f"seqnet+matcher_L{bl}_R@1"] = recall(np.array(pred))
    res["eval_s"] = round(time.perf_counter() - t0, 2)
    return res
