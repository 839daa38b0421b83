"""Cross-modal retrieval: a text query searched directly among the map's *image* descriptors.

The model is a text encoder whose output lives in the descriptor space of one image model
(``kind: text`` manifest with ``extra.target_image_model: <image model_id>``): a sentence
encoder with a trained projection head (``lavpr-train lang-align``), or the text tower of a
CLIP/BLIP-style dual encoder exported next to its image tower. So an instruction can find
places that nobody described in words — every keyframe has an image descriptor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import ModelError, ModelManifest
from .onnx_model import as_manifest
from .text_retrieval import MAX_QUERY_CHARS

TARGET_KEY = "target_image_model"


class CrossModalError(ModelError, ValueError):
    """A cross-modal model that does not fit the map (or is not a cross-modal model)."""


@dataclass(frozen=True)
class CrossModalHit:
    place_id: int
    score: float


def target_image_model(manifest: ModelManifest) -> str:
    """The image model_id whose descriptor space a cross-modal text model maps into."""
    target = manifest.extra.get(TARGET_KEY)
    if manifest.kind != "text" or not isinstance(target, str) or not target:
        raise CrossModalError(
            f"model '{manifest.model_id}' is not a cross-modal text model: it needs kind 'text' "
            f"and extra.{TARGET_KEY} (the image model_id it maps into)"
        )
    return target


class CrossModalRetriever:
    """Text -> image-descriptor space (ONNX, no torch) + search over a PlaceMap's descriptors."""

    def __init__(
        self,
        manifest: str | Path | ModelManifest,
        providers: Sequence[str] | None = None,
        encoder: Any = None,
    ) -> None:
        m = as_manifest(manifest)
        self.target_model_id = target_image_model(m)
        if encoder is None:
            from .text_encoder import TextEncoder

            encoder = TextEncoder(m, providers=providers)
        self.encoder = encoder
        self.model_id = m.model_id
        self.dim = int(m.output_dim)

    def check_map(self, model_id: str, dim: int) -> None:
        """Refuse a map built with another image model (its descriptors are another space)."""
        if model_id != self.target_model_id or int(dim) != self.dim:
            raise CrossModalError(
                f"cross-modal model '{self.model_id}' maps text into the space of image model "
                f"'{self.target_model_id}' ({self.dim}-d); the map was built with '{model_id}' "
                f"({dim}-d)"
            )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) L2-normalised image-space embeddings of texts."""
        return self.encoder.encode([str(t)[:MAX_QUERY_CHARS] for t in texts])

    def search(self, place_map: Any, text: str, k: int = 5) -> list[CrossModalHit]:
        """Best-first places of ``place_map`` (a core PlaceMap) for a text query."""
        if not str(text).strip():
            raise ValueError("empty text query")
        self.check_map(place_map.model_id, place_map.dim)
        if len(place_map) == 0:
            return []
        q = self.embed([text])[0]
        return [CrossModalHit(i, s) for i, s in place_map.search(q, max(1, int(k)))]

    def rank(self, texts: Sequence[str], descriptors: np.ndarray, k: int) -> np.ndarray:
        """(len(texts), k) indices of ``descriptors`` rows, best first (offline evaluation)."""
        d = np.asarray(descriptors, dtype=np.float32)
        if d.ndim != 2 or d.shape[1] != self.dim:
            raise CrossModalError(f"descriptors must be (N, {self.dim}), got {d.shape}")
        sims = self.embed(texts) @ d.T
        return np.argsort(-sims, axis=1, kind="stable")[:, : min(k, d.shape[0])]
