"""SeqNet sequence encoder (ONNX) and the hierarchical sequence search it enables.

A sequence encoder maps the last L single-frame descriptors (L, D) to one sequence descriptor
(a temporal 1-D convolution trained in ``training/lavpr_train/sequence``). At run time it gives a
two-stage search:

1. shortlist: the K map places whose *sequence* descriptors (the window of L places ending at
   them) are nearest the query's (faiss inner product; cheap, one vector per place);
2. re-rank: the shortlist is re-scored by single-frame sequence matching (SeqSLAM-style scores of
   :class:`~lavpr_ros.core.sequence.SequenceMatcher`, or :func:`diagonal_scores`), and the best
   re-ranked place wins.

Manifest: kind ``sequence``, ``input_name`` (B, L, D) float32, ``output_name`` (B, output_dim),
``extra``: ``sequence_length`` (L), ``frame_dim`` (D), ``frame_model`` (the model id of the
single-frame descriptors it was trained on; a mismatch is refused), ``mode``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .manifest import ModelKindError, ModelLoadError, ModelManifest
from .onnx_model import OnnxModel, as_manifest


class SequenceModelError(ModelLoadError):
    """A sequence model that cannot be used (wrong kind, shapes, or frame descriptors)."""


class SequenceKindError(SequenceModelError, ModelKindError):
    """A model of another kind given as the sequence encoder."""


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class SequenceEncoder(OnnxModel):
    """ONNX Runtime SeqNet; ``encode`` takes (B, L, D) or one (L, D) window."""

    kind = "sequence"
    kind_error = SequenceKindError

    def __init__(
        self, manifest: str | Path | ModelManifest, providers: Sequence[str] | None = None
    ) -> None:
        m = as_manifest(manifest)
        try:
            self.length = int(m.extra["sequence_length"])
            self.frame_dim = int(m.extra["frame_dim"])
        except (KeyError, TypeError, ValueError) as exc:
            if m.kind != self.kind:
                raise self.kind_error(
                    f"{m.model_id}: manifest kind is {m.kind!r}, not 'sequence'"
                ) from None
            raise SequenceModelError(
                f"{m.model_id}: manifest extra needs integer sequence_length and frame_dim"
            ) from exc
        self.frame_model = str(m.extra.get("frame_model", ""))
        super().__init__(m, providers, intra_op_threads=1)
        inp = self.session.get_inputs()[0]
        if inp.name != m.input_name:
            raise SequenceModelError(
                f"{m.model_id}: model input is {inp.name!r}, manifest says {m.input_name!r}"
            )

    def check_frame_model(self, frame_model_id: str) -> None:
        """Refuse frame descriptors from another model than the one this was trained on."""
        if self.frame_model and frame_model_id and frame_model_id != self.frame_model:
            raise SequenceModelError(
                f"sequence model {self.model_id} was trained on '{self.frame_model}' descriptors, "
                f"but the map holds '{frame_model_id}' descriptors"
            )

    def encode(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float32)
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (self.length, self.frame_dim):
            raise ValueError(
                f"expected windows of shape (B, {self.length}, {self.frame_dim}), got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError("sequence window has NaN/inf values")
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32)
        y = self.session.run([self.manifest.output_name], {self.manifest.input_name: x})[0]
        out = _l2(np.asarray(y, dtype=np.float32))
        return out[0] if single else out

    def encode_route(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """Descriptors of every window of consecutive frames: row i ends at frame i + L - 1."""
        f = np.asarray(frames, dtype=np.float32)
        if len(f) < self.length:
            return np.zeros((0, self.dim), np.float32)
        wins = np.lib.stride_tricks.sliding_window_view(f, self.length, axis=0).transpose(0, 2, 1)
        return np.concatenate(
            [
                self.encode(np.ascontiguousarray(wins[s : s + batch]))
                for s in range(0, len(wins), batch)
            ]
        )

    def __repr__(self) -> str:
        return f"SequenceEncoder({self.model_id!r}, L={self.length}, dim={self.dim})"


class FrameWindow:
    """The last ``length`` single-frame descriptors; ``window()`` is None until it is full."""

    def __init__(self, length: int) -> None:
        self.length = int(length)
        self.frames: deque[np.ndarray] = deque(maxlen=self.length)

    def push(self, descriptor: np.ndarray) -> np.ndarray | None:
        self.frames.append(np.asarray(descriptor, dtype=np.float32))
        return self.window()

    def window(self) -> np.ndarray | None:
        return np.stack(self.frames) if len(self.frames) == self.length else None

    def reset(self) -> None:
        self.frames.clear()


class SequenceIndex:
    """Sequence descriptors keyed by the id of the place (frame) each window ends at (faiss IP).

    ``search`` may be limited to ids below ``max_id`` (the loop-closure temporal exclusion).
    """

    def __init__(self, dim: int) -> None:
        import faiss

        self._faiss = faiss
        self.dim = int(dim)
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.ids: set[int] = set()

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: Sequence[int] | np.ndarray, descriptors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        d = np.ascontiguousarray(descriptors, dtype=np.float32).reshape(len(ids), self.dim)
        if len(ids) == 0:
            return
        dup = self.ids.intersection(ids.tolist())
        if dup:
            raise ValueError(f"sequence descriptors already indexed for ids {sorted(dup)[:5]}")
        self.index.add_with_ids(d, ids)
        self.ids.update(ids.tolist())

    def search(
        self, query: np.ndarray, k: int, max_id: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, inner products) of the ``k`` nearest, best first; empty when nothing qualifies."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        if len(self) == 0 or k < 1:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params = None
        if max_id is not None:
            if max_id <= 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorRange(0, int(max_id)))
        sims, ids = self.index.search(q, min(int(k), len(self)), params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), sims[0][keep]

    def reset(self) -> None:
        self.index.reset()
        self.ids.clear()


def diagonal_scores(
    query_frames: np.ndarray,
    ref_frames: np.ndarray,
    ends: Sequence[int] | np.ndarray,
    velocities: Sequence[float] = (1.0,),
) -> np.ndarray:
    """Mean cosine along straight trajectories ending at each reference index in ``ends``.

    ``query_frames`` (L, D), oldest first; the query frame k steps back is compared with the
    reference ``end - round(v * k)`` (0 when that is before the route start); the best velocity
    counts. Raw cosines, no contrast normalisation: it ranks a handful of candidates.
    """
    q = np.asarray(query_frames, dtype=np.float32)
    r = np.asarray(ref_frames, dtype=np.float32)
    ends = np.asarray(ends, dtype=np.int64)
    L = len(q)
    out = np.full(len(ends), -np.inf)
    for v in velocities:
        offs = np.array([round(v * k) for k in range(L)], dtype=np.int64)
        idx = ends[:, None] - offs[None, :]  # (K, L): k steps back
        valid = (idx >= 0) & (idx < len(r))
        sims = np.einsum("kld,ld->kl", r[np.clip(idx, 0, len(r) - 1)], q[::-1])
        out = np.maximum(out, np.where(valid, sims, 0.0).mean(axis=1))
    return out.astype(np.float32)


@dataclass
class HierarchicalResult:
    index: int  # best place after re-ranking
    shortlist: np.ndarray  # candidate ids, in shortlist (sequence-descriptor) order
    shortlist_sims: np.ndarray  # their sequence-descriptor inner products
    rerank_scores: np.ndarray  # their re-rank scores


def hierarchical_search(
    query_descriptor: np.ndarray,
    index: SequenceIndex,
    k: int,
    rerank: np.ndarray | Callable[[np.ndarray], np.ndarray],
    max_id: int | None = None,
) -> HierarchicalResult | None:
    """Shortlist ``k`` places by sequence descriptor, then take the best by ``rerank``: either a
    per-place score array (e.g. ``SequenceResult.scores``) or a function of the candidate ids.
    None when nothing is indexed (below ``max_id``)."""
    ids, sims = index.search(query_descriptor, k, max_id=max_id)
    if isinstance(rerank, np.ndarray):
        ids_ok = ids < len(rerank)
        ids, sims = ids[ids_ok], sims[ids_ok]
        scores = rerank[ids] if len(ids) else np.zeros(0, np.float32)
    else:
        scores = np.asarray(rerank(ids), dtype=np.float32) if len(ids) else np.zeros(0)
    if len(ids) == 0:
        return None
    best = int(np.argmax(scores))  # ties: the earlier (better-shortlisted) candidate
    return HierarchicalResult(int(ids[best]), ids, sims, np.asarray(scores, np.float32))
