"""Text retrieval over place descriptions: caching, ranking, empty inputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from lavpr_ros.core.text_retrieval import TextPlaceIndex


class BagOfWords:
    """A deterministic word-hashing embedder: enough to test the index mechanics."""

    model_id, dim = "bow-test", 64

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w)) % self.dim] += 1.0
            out[i] /= max(np.linalg.norm(out[i]), 1e-6)
        return out


def test_ranking_and_caching() -> None:
    emb = BagOfWords()
    idx = TextPlaceIndex(emb)
    assert idx.query("anything") == []
    assert idx.sync([(0, "red door kitchen"), (1, "blue stairs"), (2, ""), (3, "garden")]) == 3
    assert len(idx) == 3  # the empty description is not indexed
    hits = idx.query("the red door", k=2)
    assert hits[0].place_id == 0
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    # Re-sync with one change: only the changed description is encoded again.
    emb.calls.clear()
    assert idx.sync([(0, "red door kitchen"), (1, "blue stairs with plant"), (3, "garden")]) == 1
    assert emb.calls == [["blue stairs with plant"]]
    assert idx.query("plant")[0].place_id == 1


def test_empty_query_refused() -> None:
    idx = TextPlaceIndex(BagOfWords())
    idx.sync([(0, "x")])
    with pytest.raises(ValueError, match="empty"):
        idx.query("   ")


def test_huge_query_is_cut_before_encoding() -> None:
    emb = BagOfWords()
    idx = TextPlaceIndex(emb)
    idx.sync([(0, "door")])
    idx.query("door " * 50_000)
    assert len(emb.calls[-1][0]) <= 10_000
