"""Text -> place retrieval over place descriptions (LaVPR's text mode).

Descriptions are embedded once and cached by (place id, text), so a map with many annotated
places costs one encoder call per new or changed description, not per query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

MAX_QUERY_CHARS = 10_000  # longer commands are cut here before tokenisation (which truncates too)


class TextEmbedder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class TextHit:
    place_id: int
    score: float
    description: str


class TextPlaceIndex:
    """Cosine retrieval of described places for a text query."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self._ids: list[int] = []
        self._texts: list[str] = []
        self._emb = np.zeros((0, embedder.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def sync(self, described: Iterable[tuple[int, str]]) -> int:
        """Make the index hold exactly these (place id, description) pairs; returns #encoded."""
        wanted = [(int(i), str(t)) for i, t in described if str(t).strip()]
        known = dict(zip(zip(self._ids, self._texts, strict=True), self._emb, strict=True))
        todo = [(i, t) for i, t in wanted if (i, t) not in known]
        if todo:
            vecs = self.embedder.encode([t for _, t in todo])
            known.update({key: v for key, v in zip(todo, vecs, strict=True)})
        self._ids = [i for i, _ in wanted]
        self._texts = [t for _, t in wanted]
        self._emb = (
            np.stack([known[k] for k in wanted]).astype(np.float32)
            if wanted
            else np.zeros((0, self.embedder.dim), dtype=np.float32)
        )
        return len(todo)

    def query(self, text: str, k: int = 5) -> list[TextHit]:
        """Best-first hits; empty when nothing is described. Empty queries are refused."""
        text = str(text)
        if not text.strip():
            raise ValueError("empty text query")
        if not self._ids:
            return []
        q = self.embedder.encode([text[:MAX_QUERY_CHARS]])[0]
        scores = self._emb @ q
        order = np.argsort(-scores, kind="stable")[: max(1, int(k))]
        return [TextHit(self._ids[j], float(scores[j]), self._texts[j]) for j in order.tolist()]


def log_safe(text: str, limit: int | None = None) -> str:
    """``text`` fit for a log line: control characters (newlines, escape sequences that could
    forge log lines or drive a terminal) are shown escaped, and long text is cut."""
    cut = text if limit is None else text[:limit]
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cut)
    return out + ("..." if limit is not None and len(text) > limit else "")
