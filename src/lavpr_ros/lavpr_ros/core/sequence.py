"""Incremental SeqSLAM-style sequence matching over a growing map.

Single images are ambiguous under strong appearance change (summer vs winter Nordland: ~13 %
Recall@1 with patch-normalised descriptors), but a *sequence* of consecutive frames that lines up
with a run of consecutive map places is rarely a coincidence. Each new query frame brings one
column of similarities to the N map places (N may grow: online the map is every past keyframe).
The column is contrast-normalised once, on arrival, and kept in a ring buffer of the last
``length`` columns; each update scores straight trajectories through that buffer for a range of
relative velocities. Nothing is ever recomputed over the full query x map matrix.

Contrast enhancement works on both axes of the similarity matrix:

* map side (classic SeqSLAM): each column is z-scored over a window of ±``contrast_window`` map
  places, so a place has to stand out from its neighbours, not merely look generic. The local
  standard deviation gets a floor of ``std_floor`` x the column's global spread; without it a
  window that happens to be flat turns noise into huge z-scores.
* query side: each map place's normalised similarity is z-scored again over the last
  ``query_window`` query frames (causal), which suppresses places that match *everything*
  (e.g. a generic, snowy-looking stretch of track).

Nordland (3576 frames, winter queries vs summer map, ±1 frame, 64x32/p8 patch-norm, L=20):
defaults 0.886 Recall@1; no std floor 0.851; no query-side normalisation 0.875; diagonal only
(velocity 1.0) 0.903 - this data is frame-aligned, so a velocity range only adds chance
alignments, but real robots do not revisit at the mapping speed. 0.5..2.0 (9 velocities) 0.864;
L=15 0.846, L=10 0.770. On densely sampled traverses (Corridor: adjacent frames 0.78 cosine)
windows of ±5 places are too narrow for map-side normalisation; use raw cosines there
(``contrast_normalise=False``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Relative velocities (query frames per map place) searched by default: ±25 % around the map's
# speed. Wider ranges (0.5..2.0) are supported but admit more chance alignments.
DEFAULT_VELOCITIES: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.25)
_EPS = 1e-12


@dataclass
class SequenceResult:
    """Best sequence ending at the newest query frame.

    ``score`` is the mean (normalised) similarity along the best trajectory; ``second_score`` the
    best score ending outside ±``exclusion_window`` places of ``index``; ``confidence`` their
    difference (0 when there is nothing outside the window to compare with).
    """

    index: int
    score: float
    second_score: float
    confidence: float
    velocity: float
    length_used: int
    scores: np.ndarray = field(repr=False)


def _local_zscore(col: np.ndarray, radius: int, std_floor: float) -> np.ndarray:
    """Z-score of each entry over its ±radius neighbours (clipped at the ends), O(N) via cumsums."""
    n = len(col)
    if n == 0:
        return col.astype(np.float64)
    x = col.astype(np.float64)
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    idx = np.arange(n)
    lo = np.maximum(idx - radius, 0)
    hi = np.minimum(idx + radius + 1, n)
    cnt = hi - lo
    mean = (c1[hi] - c1[lo]) / cnt
    var = np.maximum((c2[hi] - c2[lo]) / cnt - mean * mean, 0.0)
    floor = std_floor * float(x.std())
    return (x - mean) / np.sqrt(var + floor * floor + _EPS)


class SequenceMatcher:
    """Feed one similarity column per query frame with :meth:`update`; see the module docstring.

    ``length``: frames per sequence (ring buffer size). ``velocities``: relative speeds searched
    (query frames advance ``v`` map places each). ``exclusion_window``: places either side of the
    best match ignored when taking the second-best (default ``length``). ``min_length``: frames
    needed before a result is returned (default ``length // 2``, at least 1).
    """

    def __init__(
        self,
        length: int = 10,
        velocities: Sequence[float] | None = None,
        exclusion_window: int | None = None,
        contrast_normalise: bool = True,
        contrast_window: int = 5,
        query_window: int = 20,
        std_floor: float = 0.5,
        min_length: int | None = None,
    ) -> None:
        if int(length) < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        vels = tuple(float(v) for v in (velocities or DEFAULT_VELOCITIES))
        if not vels or not all(math.isfinite(v) and v > 0 for v in vels):
            raise ValueError(f"velocities must be positive and finite, got {vels}")
        if contrast_window < 1:
            raise ValueError(f"contrast_window must be >= 1, got {contrast_window}")
        if query_window < 0 or std_floor < 0:
            raise ValueError("query_window and std_floor must be >= 0")
        self.length = int(length)
        self.velocities = vels
        self.exclusion_window = self.length if exclusion_window is None else int(exclusion_window)
        self.contrast_normalise = bool(contrast_normalise)
        self.contrast_window = int(contrast_window)
        self.query_window = int(query_window)
        self.std_floor = float(std_floor)
        self.min_length = max(1, self.length // 2 if min_length is None else int(min_length))
        if self.min_length > self.length:
            raise ValueError(f"min_length {self.min_length} exceeds length {self.length}")
        # Map-place offset of the frame k steps back, per velocity: (V, length) ints.
        self._offsets = np.array(
            [[round(v * k) for k in range(self.length)] for v in self.velocities], dtype=np.int64
        )
        self.reset()

    def reset(self) -> None:
        """Forget all frames (e.g. after the robot was relocated or a bag restarted)."""
        self._columns: deque[np.ndarray] = deque(maxlen=self.length)
        self._q_columns: deque[np.ndarray] = deque()
        self._q_sum = np.zeros(0)
        self._q_sumsq = np.zeros(0)
        self._q_count = np.zeros(0, dtype=np.int64)
        self.frames_seen = 0

    # ------------------------------------------------------------- normalisation
    def _query_zscore(self, col: np.ndarray) -> np.ndarray:
        """Z-score each place over the last ``query_window`` columns (running sums, O(N))."""
        n = len(col)
        if n > len(self._q_sum):
            grow = n - len(self._q_sum)
            self._q_sum = np.concatenate((self._q_sum, np.zeros(grow)))
            self._q_sumsq = np.concatenate((self._q_sumsq, np.zeros(grow)))
            self._q_count = np.concatenate((self._q_count, np.zeros(grow, dtype=np.int64)))
        self._q_columns.append(col)
        self._q_sum[:n] += col
        self._q_sumsq[:n] += col * col
        self._q_count[:n] += 1
        if len(self._q_columns) > self.query_window:
            old = self._q_columns.popleft()
            m = len(old)
            self._q_sum[:m] -= old
            self._q_sumsq[:m] -= old * old
            self._q_count[:m] -= 1
        cnt = self._q_count[:n]
        mean = self._q_sum[:n] / cnt
        var = np.maximum(self._q_sumsq[:n] / cnt - mean * mean, 0.0)
        out = (col - mean) / np.sqrt(var + self.std_floor**2 + _EPS)
        # A place seen in one frame only has no query-side history: keep its map-side value
        # (z-scoring a single sample would zero it and make the first frame uninformative).
        return np.where(cnt >= 2, out, col)

    def _normalise(self, sims: np.ndarray) -> np.ndarray:
        if not self.contrast_normalise:
            return sims.astype(np.float64)
        col = _local_zscore(sims, self.contrast_window, self.std_floor)
        if self.query_window > 1:
            col = self._query_zscore(col)
        return col

    # ------------------------------------------------------------------ update
    def update(self, sims: np.ndarray) -> SequenceResult | None:
        """Add the newest query frame's similarity to each of the N map places (N may grow).

        Returns None while fewer than ``min_length`` frames were seen or the map is empty.
        Raises ValueError (state unchanged) for non-finite or non-1-D input, or a shrinking map.
        """
        s = np.asarray(sims, dtype=np.float64)
        if s.ndim != 1:
            raise ValueError(f"sims must be 1-D (one value per map place), got shape {s.shape}")
        if not np.isfinite(s).all():
            raise ValueError("sims contain NaN/inf")
        if self._columns and len(s) < len(self._columns[-1]):
            raise ValueError(
                f"map shrank from {len(self._columns[-1])} to {len(s)} places; call reset() first"
            )
        self._columns.append(self._normalise(s))
        self.frames_seen += 1
        n = len(s)
        used = len(self._columns)
        if n == 0 or used < self.min_length:
            return None
        return self._score(n, used)

    def _score(self, n: int, used: int) -> SequenceResult:
        """Best straight trajectory ending at each place; a missing entry (before the map's start
        or a place that did not exist yet) contributes 0, the normalised neutral value."""
        best = np.full(n, -np.inf)
        best_v = np.zeros(n, dtype=np.int64)
        cols = list(self._columns)[::-1]  # cols[k]: k frames back
        for vi in range(len(self.velocities)):
            acc = np.zeros(n)
            for k in range(used):
                off = int(self._offsets[vi, k])
                col = cols[k]
                span = min(len(col), n - off)
                if span > 0:
                    acc[off : off + span] += col[:span]
            better = acc > best
            best = np.where(better, acc, best)
            best_v[better] = vi
        scores = best / used
        index = int(np.argmax(scores))
        lo, hi = max(0, index - self.exclusion_window), index + self.exclusion_window + 1
        outside = np.concatenate((scores[:lo], scores[hi:]))
        score = float(scores[index])
        if len(outside):
            second = float(outside.max())
            confidence = score - second
        else:
            second, confidence = -math.inf, 0.0
        return SequenceResult(
            index=index,
            score=score,
            second_score=second,
            confidence=confidence,
            velocity=self.velocities[int(best_v[index])],
            length_used=used,
            scores=scores.astype(np.float32),
        )


def match_sequences(
    sim_matrix: np.ndarray | Iterable[np.ndarray], **matcher_kwargs: object
) -> list[SequenceResult | None]:
    """Offline helper: feed each query row (Q, N) - or each 1-D column of a growing map - in turn.

    Going through :meth:`SequenceMatcher.update` keeps offline evaluation bit-identical to what a
    live node computes frame by frame.
    """
    matcher = SequenceMatcher(**matcher_kwargs)  # type: ignore[arg-type]
    return [matcher.update(row) for row in sim_matrix]
