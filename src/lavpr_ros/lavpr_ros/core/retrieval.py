"""Place retrieval for a query (LaVPR modes), behind one ``search``: text (place descriptions),
image (the latest camera descriptor), cross_modal (text against the places' image descriptors)
and fusion (camera view + text). place_map's query_places service is a thin wrapper of this."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .place_map import PlaceMap
from .text_retrieval import TextPlaceIndex

MODES = ("text", "image", "cross_modal", "fusion")
MAX_TEXT_CHARS = 10_000


class RetrievalError(ValueError):
    """The query cannot be answered in this mode (says which model or input is missing)."""


@dataclass
class Hit:
    place_id: int
    score: float
    text_score: float = math.nan
    image_score: float = math.nan


class PlaceRetriever:
    """The optional models of each mode; ``search`` refuses modes whose model is not loaded."""

    def __init__(
        self,
        text_index: TextPlaceIndex | None = None,
        cross_modal: Any | None = None,
        fusion: Any | None = None,
    ) -> None:
        self.text_index = text_index
        self.cross_modal = cross_modal
        self.fusion = fusion
        self._text_cache: dict[tuple[int, str], np.ndarray] = {}

    def sync(self, place_map: PlaceMap | None) -> None:
        """Re-index the place descriptions (after a load or an annotation)."""
        if self.text_index is not None and place_map is not None:
            self.text_index.sync((p.id, p.description) for p in place_map.places)

    def search(
        self,
        mode: str,
        text: str,
        k: int,
        place_map: PlaceMap | None,
        view: tuple[str, np.ndarray] | None = None,
    ) -> list[Hit]:
        """Best ``k`` places for the query, best first. ``view`` = (model id, descriptor) of the
        latest camera frame, for the image and fusion modes."""
        mode = mode.replace("-", "_")
        k = max(1, int(k))
        if mode == "text":
            return self._text(text, k)
        if mode == "image":
            pm, q = self._view(place_map, view)
            return [Hit(i, s, image_score=s) for i, s in pm.search(q, k)]
        if mode == "cross_modal":
            return self._cross_modal(text, k, place_map)
        if mode == "fusion":
            return self._fusion(text, k, place_map, view)
        raise RetrievalError(f"retrieval mode '{mode}' is not available; use {', '.join(MODES)}")

    def _text(self, text: str, k: int) -> list[Hit]:
        if self.text_index is None:
            raise RetrievalError("no text model configured (parameter text_model)")
        return [
            Hit(h.place_id, h.score, text_score=h.score) for h in self.text_index.query(text, k)
        ]

    @staticmethod
    def _view(
        place_map: PlaceMap | None, view: tuple[str, np.ndarray] | None
    ) -> tuple[PlaceMap, np.ndarray]:
        if place_map is None or len(place_map) == 0:
            raise RetrievalError("the map has no places yet")
        if view is None:
            raise RetrievalError("no camera descriptor received yet (vpr/descriptor)")
        model_id, desc = view
        if model_id != place_map.model_id or desc.size != place_map.dim:
            raise RetrievalError(f"latest descriptor is from '{model_id}', the map's model differs")
        return place_map, desc

    def _cross_modal(self, text: str, k: int, place_map: PlaceMap | None) -> list[Hit]:
        if self.cross_modal is None:
            raise RetrievalError("no cross-modal model configured (parameter cross_modal_model)")
        if place_map is None or len(place_map) == 0:
            return []
        try:
            hits = self.cross_modal.search(place_map, text, k)
        except ValueError as exc:  # CrossModalError: another image model's map
            raise RetrievalError(str(exc)) from exc
        return [Hit(h.place_id, h.score, image_score=h.score) for h in hits]

    def _fusion(
        self,
        text: str,
        k: int,
        place_map: PlaceMap | None,
        view: tuple[str, np.ndarray] | None,
    ) -> list[Hit]:
        if self.fusion is None or self.text_index is None:
            raise RetrievalError("fusion needs the fusion_model and text_model parameters")
        if not text.strip():
            raise RetrievalError("empty text query (fusion uses it as the current place's words)")
        pm, q_img = self._view(place_map, view)
        embedder = self.text_index.embedder
        self.fusion.check_models(pm.model_id, embedder.model_id)
        ct = np.zeros((len(pm), embedder.dim), dtype=np.float32)
        has = np.zeros(len(pm), dtype=bool)
        todo = [
            (p.id, p.description)
            for p in pm.places
            if p.description and (p.id, p.description) not in self._text_cache
        ]
        if todo:
            vecs = embedder.encode([t for _, t in todo])
            self._text_cache.update(dict(zip(todo, vecs, strict=True)))
        for p in pm.places:
            if p.description:
                ct[p.id], has[p.id] = self._text_cache[(p.id, p.description)], True
        q_txt = embedder.encode([text[:MAX_TEXT_CHARS]])[0]
        fused = self.fusion.scores(q_img, q_txt, pm.descriptors, ct, has)
        order = np.argsort(-fused.score, kind="stable")[:k]
        return [
            Hit(int(i), float(fused.score[i]), float(fused.text[i]), float(fused.image[i]))
            for i in order
        ]
