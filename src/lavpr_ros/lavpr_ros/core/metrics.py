"""Place-recognition metrics in plain numpy, shared by the CLI, benchmarks and tests.

Conventions (the usual VPR ones): every query that has at least one positive counts towards
recall; a query's single best match is either correct or not; the PR curve sweeps a threshold on
the best match's score, so recall = correct matches accepted / queries with a true match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def recall_at_k(
    ranked: np.ndarray, positives: Sequence[set[int]], ks: Iterable[int] = (1, 5, 10)
) -> dict[str, float]:
    """Fraction of queries with a positive among their first k ranked map indices.

    ``ranked`` is (Q, K), best first. Queries without positives are left out of the denominator
    (they cannot be recalled). A k larger than K uses all K columns, which is exact when K is the
    whole map (a map of 5 places has Recall@10 == Recall@5). Keys are ``"recall@k"``.
    """
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"k must be >= 1, got {ks}")
    r = np.asarray(ranked)
    if r.size == 0:
        r = r.reshape(len(positives), 0)
    if r.ndim != 2 or r.shape[0] != len(positives):
        raise ValueError(f"ranked must be (Q={len(positives)}, K), got shape {r.shape}")
    valid = [q for q, pos in enumerate(positives) if pos]
    out: dict[str, float] = {}
    for k in ks:
        if not valid:
            out[f"recall@{k}"] = 0.0
            continue
        hits = sum(1 for q in valid if any(int(i) in positives[q] for i in r[q, :k]))
        out[f"recall@{k}"] = hits / len(valid)
    return out


def precision_recall_curve(
    scores: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    num_positive_queries: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds), one point per distinct score, highest threshold first.

    Accepting every query whose best score is >= threshold; tied scores are accepted together
    (a threshold cannot split them). ``num_positive_queries`` defaults to the number of queries.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(correct, dtype=bool).reshape(-1)
    if s.shape != c.shape:
        raise ValueError(f"scores and correct differ in length: {s.shape} vs {c.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN/inf")
    total = len(s) if num_positive_queries is None else int(num_positive_queries)
    if len(s) == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    if total <= 0:
        raise ValueError(f"num_positive_queries must be positive, got {total}")
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    tp = np.cumsum(c)
    accepted = np.arange(1, len(s) + 1)
    # Last position of each run of equal scores: where the threshold can actually sit.
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    precision = tp[last] / accepted[last]
    recall = tp[last] / total
    return precision, recall, s[last]


def auc_pr(
    scores: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    num_positive_queries: int | None = None,
) -> float:
    """Area under the PR curve, step-wise (average precision: sum of dRecall x precision)."""
    precision, recall, _ = precision_recall_curve(scores, correct, num_positive_queries)
    if len(recall) == 0:
        return 0.0
    d_recall = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(d_recall * precision))


def recall_at_precision(
    scores: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    precision: float = 1.0,
    num_positive_queries: int | None = None,
) -> float:
    """Highest recall reachable with precision >= ``precision`` (0 when none is)."""
    p, r, _ = precision_recall_curve(scores, correct, num_positive_queries)
    ok = p >= precision - 1e-12
    return float(r[ok].max()) if ok.any() else 0.0


def latency_percentiles(ms_list: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p95/p99/mean/max of per-frame latencies in ms (all NaN for an empty list)."""
    x = np.asarray(ms_list, dtype=np.float64).reshape(-1)
    keys = ("p50", "p90", "p95", "p99", "mean", "max")
    if len(x) == 0:
        return {k: float("nan") for k in keys}
    p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
    vals = (p50, p90, p95, p99, x.mean(), x.max())
    return {k: float(v) for k, v in zip(keys, vals, strict=True)}
