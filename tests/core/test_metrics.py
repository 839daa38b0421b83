"""Metrics on small hand-computed cases, including ties and empty inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lavpr_ros.core.metrics import (
    auc_pr,
    latency_percentiles,
    precision_recall_curve,
    recall_at_k,
    recall_at_precision,
)


def test_recall_at_k_hand_case() -> None:
    ranked = np.array([[0, 1, 2], [5, 4, 3], [9, 8, 7], [1, 2, 3]])
    positives = [{0}, {3}, {100}, set()]  # last query has no positive: left out
    r = recall_at_k(ranked, positives, ks=(1, 2, 3, 10))
    assert r["recall@1"] == pytest.approx(1 / 3)
    assert r["recall@2"] == pytest.approx(1 / 3)
    assert r["recall@3"] == pytest.approx(2 / 3)
    assert r["recall@10"] == pytest.approx(2 / 3)  # k > K uses all columns


def test_recall_at_k_empty_and_bad() -> None:
    assert recall_at_k(np.zeros((0, 0)), [], ks=(1,)) == {"recall@1": 0.0}
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((2, 3)), [{0}], ks=(1,))
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((1, 3)), [{0}], ks=(0,))


def test_pr_curve_hand_case() -> None:
    scores = [0.9, 0.8, 0.7, 0.6]
    correct = [True, False, True, True]
    p, r, t = precision_recall_curve(scores, correct)
    np.testing.assert_allclose(p, [1.0, 0.5, 2 / 3, 0.75])
    np.testing.assert_allclose(r, [0.25, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(t, scores)
    # AP = 0.25*1 + 0*0.5 + 0.25*(2/3) + 0.25*0.75
    assert auc_pr(scores, correct) == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 0.75)
    assert recall_at_precision(scores, correct, 1.0) == pytest.approx(0.25)
    assert recall_at_precision(scores, correct, 0.7) == pytest.approx(0.75)
    assert recall_at_precision(scores, correct, 1.0, num_positive_queries=2) == pytest.approx(0.5)


def test_pr_curve_ties_are_one_threshold() -> None:
    # The two 0.8s cannot be separated by a threshold: one point with both accepted.
    p, r, t = precision_recall_curve([0.8, 0.9, 0.8], [False, True, True])
    np.testing.assert_allclose(t, [0.9, 0.8])
    np.testing.assert_allclose(p, [1.0, 2 / 3])
    np.testing.assert_allclose(r, [1 / 3, 2 / 3])
    # Order of tied inputs does not matter.
    p2, r2, _ = precision_recall_curve([0.8, 0.8, 0.9], [True, False, True])
    np.testing.assert_allclose(p2, p)
    np.testing.assert_allclose(r2, r)
    # A wrong match tied with the best means 100 % precision is unreachable.
    assert recall_at_precision([0.5, 0.5], [True, False], 1.0) == 0.0


def test_pr_empty_and_invalid() -> None:
    p, r, t = precision_recall_curve([], [])
    assert len(p) == len(r) == len(t) == 0
    assert auc_pr([], []) == 0.0
    assert recall_at_precision([], []) == 0.0
    with pytest.raises(ValueError):
        precision_recall_curve([0.1, float("nan")], [True, False])
    with pytest.raises(ValueError):
        precision_recall_curve([0.1], [True, False])


def test_perfect_ranking_has_unit_auc() -> None:
    assert auc_pr([3, 2, 1], [True, True, True]) == pytest.approx(1.0)
    assert recall_at_precision([3, 2, 1], [True, True, False]) == pytest.approx(2 / 3)


def test_latency_percentiles() -> None:
    lat = latency_percentiles(list(range(1, 101)))
    assert lat["p50"] == pytest.approx(50.5)
    assert lat["p90"] == pytest.approx(90.1)
    assert lat["p99"] == pytest.approx(99.01)
    assert lat["mean"] == pytest.approx(50.5)
    assert lat["max"] == 100.0
    assert set(lat) == {"p50", "p90", "p95", "p99", "mean", "max"}
    assert all(math.isnan(v) for v in latency_percentiles([]).values())
