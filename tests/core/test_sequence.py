"""SequenceMatcher against a naive reference, growing maps, velocities and batch equivalence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lavpr_ros.core.sequence import SequenceMatcher, match_sequences


def _naive_scores(cols: list[np.ndarray], length: int, velocities, radius, qwin, floor):
    """Loop-by-loop re-implementation of the documented algorithm for the newest frame."""
    normed = []
    for col in cols:
        n = len(col)
        fl = floor * float(np.std(col)) if n else 0.0
        z = np.zeros(n)
        for j in range(n):
            w = col[max(0, j - radius) : j + radius + 1]
            z[j] = (col[j] - w.mean()) / math.sqrt(w.var() + fl * fl + 1e-12)
        normed.append(z)
    final = []
    for t, z in enumerate(normed):
        out = np.zeros(len(z))
        for j in range(len(z)):
            hist = [normed[s][j] for s in range(max(0, t - qwin + 1), t + 1) if len(normed[s]) > j]
            h = np.array(hist)
            if len(h) < 2:
                out[j] = z[j]
            else:
                out[j] = (z[j] - h.mean()) / math.sqrt(h.var() + floor * floor + 1e-12)
        final.append(out)
    n = len(final[-1])
    used = min(length, len(final))
    scores = np.full(n, -np.inf)
    for v in velocities:
        for j in range(n):
            total = 0.0
            for k in range(used):
                col = final[-1 - k]
                p = j - round(v * k)
                if 0 <= p < len(col):
                    total += col[p]
            scores[j] = max(scores[j], total / used)
    return scores


def test_matches_naive_reference_with_growing_map() -> None:
    rng = np.random.default_rng(0)
    cols = [rng.normal(size=8 + 2 * t) for t in range(9)]  # map grows every frame
    kw = dict(length=4, velocities=(0.5, 1.0, 2.0), contrast_window=2, query_window=3)
    m = SequenceMatcher(**kw, std_floor=0.5, min_length=1)
    for t, c in enumerate(cols):
        res = m.update(c)
        ref = _naive_scores(cols[: t + 1], 4, (0.5, 1.0, 2.0), 2, 3, 0.5)
        np.testing.assert_allclose(res.scores, ref, rtol=1e-5, atol=1e-5)
        assert res.index == int(np.argmax(ref))
        assert res.length_used == min(4, t + 1)


def test_batch_identical_to_incremental() -> None:
    rng = np.random.default_rng(1)
    sims = rng.uniform(-0.2, 0.6, size=(40, 30))
    batch = match_sequences(sims, length=6, min_length=3)
    m = SequenceMatcher(length=6, min_length=3)
    for row, b in zip(sims, batch, strict=True):
        r = m.update(row)
        if r is None:
            assert b is None
            continue
        assert (r.index, r.score, r.second_score, r.confidence, r.velocity, r.length_used) == (
            b.index,
            b.score,
            b.second_score,
            b.confidence,
            b.velocity,
            b.length_used,
        )
        np.testing.assert_array_equal(r.scores, b.scores)
    assert batch[1] is None and batch[2] is not None


def test_recovers_sequence_under_noise_and_velocity() -> None:
    """A traverse driven at twice the map's speed, with single frames too noisy to trust."""
    rng = np.random.default_rng(2)
    n, q = 200, 30
    sims = rng.normal(0.0, 0.1, size=(q, n))
    truth = [20 + 2 * t for t in range(q)]
    for t, j in enumerate(truth):
        sims[t, j] += 0.15  # weaker than the noise tails: single-frame argmax mostly wrong
    single_ok = np.mean([np.argmax(sims[t]) == truth[t] for t in range(q)])
    assert single_ok < 0.6
    res = match_sequences(sims, length=10, velocities=(0.5, 1.0, 2.0), min_length=10)
    last = res[-1]
    assert last.index == truth[-1]
    assert last.velocity == 2.0
    assert last.confidence > 0 and last.second_score < last.score
    diag_only = match_sequences(sims, length=10, velocities=(1.0,), min_length=10)[-1]
    assert diag_only.score < last.score


def test_second_score_respects_exclusion_window() -> None:
    sims = np.zeros((1, 50))
    sims[0, 20], sims[0, 22], sims[0, 40] = 1.0, 0.9, 0.5
    r = match_sequences(sims, length=1, contrast_normalise=False, exclusion_window=3)[0]
    assert r.index == 20 and r.second_score == pytest.approx(0.5)
    assert r.confidence == pytest.approx(0.5)
    r = match_sequences(sims, length=1, contrast_normalise=False, exclusion_window=1)[0]
    assert r.second_score == pytest.approx(0.9)
    r = match_sequences(sims[:, :3], length=1, contrast_normalise=False, exclusion_window=5)[0]
    assert r.second_score == -math.inf and r.confidence == 0.0


def test_none_until_min_length_and_for_empty_map() -> None:
    m = SequenceMatcher(length=6)  # min_length defaults to 3
    assert m.update(np.zeros(0)) is None  # empty map
    assert m.update(np.ones(5)) is None
    assert m.update(np.ones(5)) is not None  # third frame
    m.reset()
    assert m.frames_seen == 0 and m.update(np.ones(5)) is None


def test_ring_buffer_forgets_old_frames() -> None:
    m = SequenceMatcher(length=3, velocities=(1.0,), contrast_normalise=False, min_length=1)
    for _ in range(5):
        m.update(np.array([0.0, 0.0, 0.0, 1.0]))
    for _ in range(3):
        r = m.update(np.array([1.0, 0.0, 0.0, 0.0]))
    assert r.length_used == 3 and r.index == 0 and r.score == pytest.approx(1 / 3)


def test_bad_input_leaves_state_unchanged() -> None:
    m = SequenceMatcher(length=4, min_length=1)
    m.update(np.linspace(0, 1, 10))
    before = m.update(np.linspace(1, 0, 10)).scores.copy()
    m2 = SequenceMatcher(length=4, min_length=1)
    m2.update(np.linspace(0, 1, 10))
    for bad in (np.array([np.nan] * 10), np.ones((2, 10)), np.ones(5)):
        with pytest.raises(ValueError):
            m2.update(bad)
    np.testing.assert_array_equal(m2.update(np.linspace(1, 0, 10)).scores, before)
    with pytest.raises(ValueError):
        SequenceMatcher(length=0)
    with pytest.raises(ValueError):
        SequenceMatcher(velocities=(1.0, -1.0))
