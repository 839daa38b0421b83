"""Image + text fusion (LaVPR's fusion modes), run from an exported ONNX model (no torch).

A ``kind: fusion`` model takes a place's image descriptor and text embedding (inputs ``image``
(B, Di) and ``text`` (B, Dt), both L2-normalised) and, by ``extra.mode``:

- ``dynamic`` (LaVPR's dynamic weighting): an MLP over [image; text] of the *query* ending in a
  softmax gives ``weights`` (B, 2) = (w_image, w_text); the query's score against a candidate is
  ``w_image * cos(image_q, image_c) + w_text * cos(text_q, text_c)``. A blurred or foggy query
  image can so lean on its description.
- ``fixed``: one learned (w_image, w_text) pair for every query (same output, constant rows).
- ``concat``: an MLP over [image; text] gives a ``fused`` (B, D) descriptor; the score is the
  cosine of the two fused descriptors.

Candidates without a description have no text similarity: they are scored by their image
similarity alone (weighted modes), or with a zero text embedding (``concat``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .manifest import ModelError, ModelKindError, ModelManifest
from .onnx_model import OnnxModel, as_manifest

MODES = ("dynamic", "fixed", "concat")
WEIGHTED = ("dynamic", "fixed")


class FusionModelError(ModelError, ValueError):
    """A fusion model whose graph or manifest does not fit what it is used with."""


class FusionKindError(FusionModelError, ModelKindError):
    """A model of another kind given as the fusion model."""


@dataclass(frozen=True)
class FusedScores:
    """Scores of one query against N candidates (``text`` is NaN where a candidate has none)."""

    score: np.ndarray
    image: np.ndarray
    text: np.ndarray
    weights: tuple[float, float] | None  # (w_image, w_text) of the query; None for concat


def _rows(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != dim:
        raise ValueError(f"{what} must have shape (N, {dim}), got {np.asarray(x).shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} has non-finite values")
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return np.ascontiguousarray(a / np.maximum(n, 1e-12), dtype=np.float32)


def fuse_weighted(
    weights: Sequence[float], image_sim: np.ndarray, text_sim: np.ndarray, has_text: np.ndarray
) -> np.ndarray:
    """``w_i * image_sim + w_t * text_sim`` where a candidate has text, ``image_sim`` elsewhere."""
    wi, wt = float(weights[0]), float(weights[1])
    total = wi + wt
    if not total > 0:
        raise ValueError(f"fusion weights must have a positive sum, got {weights}")
    fused = (wi * image_sim + wt * np.nan_to_num(text_sim)) / total
    return np.where(has_text, fused, image_sim).astype(np.float32)


class FusionModel(OnnxModel):
    """An exported fusion model (``kind: fusion``) on onnxruntime's CPU provider."""

    kind = "fusion"
    default_providers = ("CPUExecutionProvider",)
    kind_error = FusionKindError

    def __init__(
        self, manifest: str | Path | ModelManifest, providers: Sequence[str] | None = None
    ) -> None:
        m = as_manifest(manifest)
        if m.kind != self.kind:
            raise self.kind_error(f"model '{m.model_id}' has kind '{m.kind}', not 'fusion'")
        self.mode = str(m.extra.get("mode", ""))
        if self.mode not in MODES:
            raise FusionModelError(
                f"{m.model_id}: extra.mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        try:
            self.image_dim = int(m.extra["image_dim"])
            self.text_dim = int(m.extra["text_dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FusionModelError(f"{m.model_id}: extra needs image_dim and text_dim") from exc
        self.image_model_id = str(m.extra.get("image_model_id", ""))
        self.text_model_id = str(m.extra.get("text_model_id", ""))
        super().__init__(m, providers, intra_op_threads=1)
        path = self.model_path
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if inputs != {"image", "text"}:
            raise FusionModelError(f"{path}: inputs must be 'image' and 'text', got {inputs}")
        if m.output_name not in outputs:
            raise FusionModelError(f"{path}: no output '{m.output_name}'; outputs {outputs}")
        probe = self._run(np.ones((1, self.image_dim)), np.ones((1, self.text_dim)))
        want = 2 if self.mode in WEIGHTED else int(m.output_dim)
        if probe.shape[1] != want:
            raise FusionModelError(f"{path}: output has {probe.shape[1]} columns, not {want}")

    def check_models(self, image_model_id: str | None, text_model_id: str | None) -> None:
        """Refuse descriptors/embeddings from other models than the fusion was trained on."""
        for what, got, want in (
            ("image", image_model_id, self.image_model_id),
            ("text", text_model_id, self.text_model_id),
        ):
            if want and got is not None and got != want:
                raise FusionModelError(
                    f"fusion model '{self.model_id}' was trained on {what} model '{want}', "
                    f"but the {what} features come from '{got}'"
                )

    def _run(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        feeds = {
            "image": _rows(image, self.image_dim, "image descriptors"),
            "text": _rows(text, self.text_dim, "text embeddings"),
        }
        return np.asarray(self.session.run([self.manifest.output_name], feeds)[0], np.float32)

    def weights(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        """(N, 2) = (w_image, w_text) per query row (weighted modes)."""
        if self.mode not in WEIGHTED:
            raise FusionModelError(f"'{self.model_id}' is a {self.mode} model: it has no weights")
        return self._run(image, text)

    def embed(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        """(N, D) L2-normalised fused descriptors (``concat`` mode)."""
        if self.mode != "concat":
            raise FusionModelError(f"'{self.model_id}' is a {self.mode} model, not concat")
        out = self._run(image, text)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def scores(
        self,
        query_image: np.ndarray,
        query_text: np.ndarray,
        cand_image: np.ndarray,
        cand_text: np.ndarray,
        cand_has_text: np.ndarray | None = None,
    ) -> FusedScores:
        """Fused scores of one query (image descriptor + text embedding) against N candidates.

        ``cand_text`` rows of candidates without a description are ignored (``cand_has_text``
        False; by default a row of zeros means no text)."""
        qi = _rows(query_image, self.image_dim, "query image")
        qt = _rows(query_text, self.text_dim, "query text")
        ci = _rows(cand_image, self.image_dim, "candidate images")
        ct = np.asarray(cand_text, dtype=np.float32).reshape(len(ci), self.text_dim)
        has = (
            np.linalg.norm(ct, axis=1) > 1e-12
            if cand_has_text is None
            else np.asarray(cand_has_text, dtype=bool).reshape(len(ci))
        )
        ct_n = np.zeros_like(ct)
        if has.any():
            ct_n[has] = _rows(ct[has], self.text_dim, "candidate texts")
        s_img = ci @ qi[0]
        s_txt = np.where(has, ct_n @ qt[0], np.nan).astype(np.float32)
        if self.mode == "concat":  # undescribed candidates: a zero text row
            fq = self.embed(qi, qt)[0]
            fc = self.embed(ci, ct_n) if len(ci) else ci
            return FusedScores((fc @ fq).astype(np.float32), s_img, s_txt, None)
        w = self.weights(qi, qt)[0]
        return FusedScores(fuse_weighted(w, s_img, s_txt, has), s_img, s_txt, (w[0], w[1]))

    def __repr__(self) -> str:
        return f"FusionModel({self.model_id!r}, mode={self.mode!r})"
