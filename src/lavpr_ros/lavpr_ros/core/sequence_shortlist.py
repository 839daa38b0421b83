"""Sequence matching over shortlists: the SequenceMatcher's scores, computed only where they matter.

The full matcher (core/sequence.py) normalises and scores one similarity column over *every*
eligible place per frame: O(N) per frame, ~110 ms at 1M places. A trajectory can only score high
where its frames' similarities are high, so this matcher scores only the trajectories ending
near (a) the top-K places retrieved by the map's index for each of the last L frames, carried
forward along each searched velocity, and (b) the previous frame's best-scoring end places (its
match and runners-up: a high-scoring sequence keeps scoring high one place further on). For
those end places it recomputes the full matcher's normalised values exactly from the stored
descriptors: map-side z-scores over the same ±``contrast_window`` neighbours (clipped at the
same column ends), the same global-std floor (from running first and second moments of the
map's rows, so no pass over the map per frame), and the query-side z-score over the same frames.
Each (frame, place) value is computed once and kept while the place stays in the shortlists.

What can differ: the runner-up. Local contrast normalisation lifts places that stand out from
their neighbours even at a low raw cosine (on Nordland a full-matcher runner-up ranked 683rd
of 3576 by cosine), and no index candidate points there; the shortlist's runner-up is then
lower, so the confidence is higher. The best match and its score are the same whenever the best
trajectory passes the candidates; with an approximate index the candidates can differ too.
Measured on Nordland/Corridor in docs/scale.md.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .descriptor_store import DescriptorStore, as_float32
from .sequence import SequenceMatcher, SequenceResult

_EPS = 1e-12
_MOVES = 256  # most rows moved down per compaction
_NEVER = -(2**62)  # ``_upto`` of a slot with no values


@dataclass
class _Frame:
    query: np.ndarray  # (dim,) float32, unit norm
    n: int  # eligible places when the frame arrived (its column length)
    std: float  # global std of its similarity column (for the std floor)
    candidates: np.ndarray  # ids retrieved for it (int64)


class ColumnMoments:
    """Running sum and second-moment matrix of the map's first ``m`` rows, so the mean and std
    of q's similarity to every place is q.s/m and q^T C q/m - mean^2 (O(dim^2), not O(N)).

    Exact as places arrive one by one: new rows wait in a small pending block whose terms are
    added directly ((q.x)^2 per row) and are folded into C ``fold_rows`` at a time (a rank-1
    update of a 3328 x 3328 matrix per keyframe cost ~60 ms; a batched one is amortised to
    < 1 ms). A jump of more than ``exact_rows`` rows at once (a large map just loaded) is
    summarised from an evenly strided sample of ~``exact_rows`` rows, so starting on a 1M-place
    map costs seconds instead of a minute (the std floor then differs from the exact one by well
    under 1 %)."""

    exact_rows = 100_000
    fold_rows = 512

    def __init__(self, dim: int) -> None:
        self.m = 0
        self.s = np.zeros(dim, dtype=np.float64)
        self.c = np.zeros((dim, dim), dtype=np.float32)
        self._block = np.zeros((self.fold_rows, dim), dtype=np.float32)  # rows not in c yet
        self._k = 0

    def advance(self, store: DescriptorStore, n: int) -> None:
        if n < self.m:  # eligibility shrank (non-monotone stamps): start over
            self.__init__(len(self.s))  # type: ignore[misc]
        if n - self.m <= self.fold_rows - self._k:  # the usual case: a keyframe or a few
            if n > self.m:
                x = store.rows(np.arange(self.m, n))
                self.s += x.astype(np.float64).sum(axis=0)
                self._block[self._k : self._k + len(x)] = x
                self._k += len(x)
                self.m = n
            if self._k == self.fold_rows:
                self.c += self._block.T @ self._block
                self._k = 0
            return
        if self._k:  # a jump: fold what waits first
            b = self._block[: self._k]
            self.c += b.T @ b
            self._k = 0
        stride = max(1, -(-(n - self.m) // self.exact_rows))
        for a in range(self.m, n, 16_384 * stride):
            b = min(n, a + 16_384 * stride)
            x = store.rows(np.arange(a, b, stride))
            self.s += stride * x.astype(np.float64).sum(axis=0)
            self.c += np.float32(stride) * (x.T @ x)
        self.m = max(self.m, n)

    def std(self, q: np.ndarray) -> float:
        if self.m == 0:
            return 0.0
        q32 = np.asarray(q, dtype=np.float32)
        mean = float(q32.astype(np.float64) @ self.s) / self.m
        second = _quadratic_form(self.c, q32)
        if self._k:
            second += float(np.sum((self._block[: self._k] @ q32).astype(np.float64) ** 2))
        return math.sqrt(max(second / self.m - mean * mean, 0.0))


def _quadratic_form(c: np.ndarray, q: np.ndarray, depth: int = 2) -> float:
    """q^T c q for a symmetric ``c``, reading its diagonal blocks and the blocks above them
    (views, no copies): 62.5 % of the matrix at depth 2. The product is memory-bound (a full
    pass reads 44 MB per keyframe at 3328-d): 1.4 -> 1.0 ms here; deeper, the smaller
    products' overheads win."""
    h = len(q) // 2
    if depth == 0 or h < 256:
        return float(q @ (c @ q))
    upper = float(q[:h] @ (c[:h, h:] @ q[h:]))
    return (
        _quadratic_form(c[:h, :h], q[:h], depth - 1)
        + 2.0 * upper
        + _quadratic_form(c[h:, h:], q[h:], depth - 1)
    )


class ShortlistSequenceMatcher:
    """Same parameters and results as :class:`SequenceMatcher`, fed with query descriptors.

    ``radius``: end places scored either side of every candidate and carried-forward place.
    ``result.scores`` is full length with ``-inf`` outside the shortlist; with
    ``dense_scores=False`` it is empty (a 4 MB array per keyframe at 1M places that the loop
    closure detector never reads: it uses index, score and confidence).
    """

    def __init__(
        self,
        matcher: SequenceMatcher,
        store: DescriptorStore,
        radius: int | None = None,
        dense_scores: bool = True,
    ):
        self.p = matcher  # parameters (and offsets) only; its state is not used
        self.store = store
        self.radius = int(matcher.contrast_window if radius is None else radius)
        self.carry = 10  # candidates of each earlier frame carried forward along the velocities
        self.peaks = 64  # best end places of a frame carried to the next as shortlist centres
        self.dense_scores = dense_scores
        self.moments = ColumnMoments(store.dim)
        self._steps_cache: dict[int, list[np.ndarray]] = {}
        self.reset()

    def reset(self) -> None:
        keep = self.p.length + max(self.p.query_window, 1) - 1
        self.frames: deque[_Frame] = deque(maxlen=keep)
        self.prev_index: int | None = None
        self.prev_peaks = np.zeros(0, dtype=np.int64)
        self.last_shortlist_size = 0
        # Rows scored last frame, their float32 descriptors and similarity to every kept frame:
        # consecutive shortlists overlap, so a frame fetches and multiplies only the new rows.
        # Slots in growable buffers (appends are O(new rows)); similarity columns are a ring
        # indexed by frame number, so a new frame writes one column instead of shifting all.
        self._n_slots = 0  # slots in use or freed (ids -1) since the last growth
        self._live = 0  # slots holding a row
        self._ids = np.zeros(0, dtype=np.int64)
        self._rows = np.zeros((0, self.store.dim), dtype=np.float32)
        self._sims = np.zeros((0, self.frames.maxlen or 1))
        self._queries = np.zeros((self._sims.shape[1], self.store.dim), dtype=np.float32)  # ring
        # Normalised values per slot and frame (same ring): the map-side z-score ``_z`` of every
        # kept frame and the final value ``_v`` (after the query-side z-score) of the frames a
        # trajectory can still use. Both depend only on the frame and the place, so they are
        # computed once: ``_upto[slot]`` is the newest frame whose values the slot holds (for
        # every kept frame up to it); a place seen in the previous frame too needs the newest
        # frame's values only, anything else (new, back after a gap, slot reused) all of them.
        self._z = np.zeros_like(self._sims)
        self._v = np.zeros_like(self._sims)
        self._upto = np.zeros(0, dtype=np.int64)
        self._frame_no = -1
        # Column of each place in the current ``need`` (only entries of ``need`` are ever read,
        # so stale ones need no reset): a gather instead of ~75k binary searches per frame.
        self._need_pos = np.zeros(0, dtype=np.int32)
        self._raw = np.zeros((0, self.store.dim), dtype=self.store.dtype)  # fetch buffers
        self._fresh = np.zeros((0, self.store.dim), dtype=np.float32)

    def record(self, query: np.ndarray, n: int, candidates: np.ndarray, std: float) -> None:
        """Remember a frame matched elsewhere (by the full matcher) so a later switch is exact."""
        self.frames.append(_Frame(query, int(n), float(std), np.asarray(candidates, np.int64)))
        self._frame_no += 1
        col = self._frame_no % self._sims.shape[1]
        self._queries[col] = query
        k = self._n_slots
        if k:
            self._sims[:k, col] = self._rows[:k] @ query

    def _columns(self) -> np.ndarray:
        """Ring columns of the kept frames, oldest first."""
        g = len(self.frames)
        return (self._frame_no - g + 1 + np.arange(g)) % self._sims.shape[1]

    def newest_sims(self, ids: np.ndarray) -> np.ndarray:
        """Exact cosines of the newest frame to places ``ids`` (from the row cache: the
        candidates of :meth:`update` are in it already)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids) or not self.frames:
            return np.zeros(len(ids))
        uniq, inverse = np.unique(ids, return_inverse=True)
        slots = self._slots(uniq, compact=False)
        return self._sims[slots, self._frame_no % self._sims.shape[1]][inverse]

    def _slots(self, rows: np.ndarray, compact: bool = True) -> np.ndarray:
        """Row-cache slots of places ``rows`` (sorted, unique), fetching the rows not cached
        yet and multiplying them with the kept frames' queries."""
        k = self._n_slots
        order = np.argsort(self._ids[:k], kind="stable")
        sorted_ids = self._ids[:k][order]
        pos = np.minimum(np.searchsorted(sorted_ids, rows), max(k - 1, 0))
        found = (sorted_ids[pos] == rows) if k else np.zeros(len(rows), dtype=bool)
        slots = np.empty(len(rows), dtype=np.int64)
        slots[found] = order[pos[found]]
        if compact and self._live > 1.1 * max(len(rows), 1024):
            # now and then: free the slots this frame does not use (new rows reuse them, so
            # nothing is copied and the buffers stay near a frame's rows)
            used = np.zeros(k, dtype=bool)
            used[slots[found]] = True
            self._ids[:k][~used] = -1
            live = self._live = int(used.sum())
            # Then up to _MOVES of the rows above the first ``live`` slots move down into the
            # holes below: a new frame multiplies fewer empty slots (record), and this frame's
            # new rows more often fill one contiguous block (decoded in place, no scatter).
            # Moving all of them (~1000 rows, 3 ms) cost more at p95 than it saved.
            src = (np.flatnonzero(used[live:]) + live)[-_MOVES:]
            if len(src):
                dst = np.flatnonzero(~used[:live])[: len(src)]
                for a in (self._ids, self._rows, self._sims, self._z, self._v, self._upto):
                    a[dst] = a[src]
                self._ids[src] = -1
                used[dst], used[src] = True, False
                moved = np.arange(k)
                moved[src] = dst
                slots[found] = moved[slots[found]]
            k = self._n_slots = int(np.flatnonzero(used)[-1]) + 1 if live else 0
        missing = rows[~found]
        if len(missing):
            free = np.flatnonzero(self._ids[:k] < 0)[: len(missing)]
            need = k + len(missing) - len(free)
            if need > len(self._ids):  # grow the buffers (doubling)
                cap = max(need, 2 * len(self._ids), 1024)
                ids = np.full(cap, -1, dtype=np.int64)
                buf = np.zeros((cap, self.store.dim), dtype=np.float32)
                sims = np.zeros((cap, self._sims.shape[1]))
                z, v = np.zeros_like(sims), np.zeros_like(sims)
                upto = np.full(cap, _NEVER, dtype=np.int64)
                ids[:k], buf[:k], sims[:k] = self._ids[:k], self._rows[:k], self._sims[:k]
                z[:k], v[:k], upto[:k] = self._z[:k], self._v[:k], self._upto[:k]
                self._ids, self._rows, self._sims = ids, buf, sims
                self._z, self._v, self._upto = z, v, upto
            new = np.concatenate((free, np.arange(k, need)))
            self._ids[new] = missing
            self._upto[new] = _NEVER  # a reused slot's values were another place's
            self._fetch(missing, new)
            slots[~found] = new
            self._n_slots = need
            self._live += len(missing)
        return slots

    def _fetch(self, ids: np.ndarray, slots: np.ndarray) -> None:
        """Rows ``ids`` (sorted) into cache ``slots`` and their similarities to the kept frames'
        queries (the whole ring: a column whose frame is not kept is rewritten when its next
        frame arrives), read and decoded into buffers kept across frames (at 1M places most of
        a frame's 30 candidates are new places: ~1000 rows, 13 MB as float32)."""
        m = len(ids)
        if len(self._fresh) < m:
            cap = max(m, 2 * len(self._fresh))
            self._fresh = np.empty((cap, self.store.dim), dtype=np.float32)
            self._raw = np.empty((cap, self.store.dim), dtype=self.store.dtype)
        if self.store.native_rows:
            raw = self.store.sorted_rows_native(ids, self._raw)
        else:  # a small map held in RAM as float32
            raw = self.store.rows(ids)
        a = int(slots[0])
        if int(slots[-1]) - a == m - 1:  # one block of slots: decoded in place
            block = as_float32(raw, self._rows[a : a + m])
            self._sims[a : a + m] = block @ self._queries.T
            return
        fresh = as_float32(raw, self._fresh[:m])
        self._rows[slots] = fresh
        self._sims[slots] = fresh @ self._queries.T  # not _rows[slots]: a gather

    def update(self, query: np.ndarray, n: int, candidates: np.ndarray) -> SequenceResult | None:
        """One frame: its unit descriptor, the eligible-place count and its retrieved ids."""
        self.moments.advance(self.store, n)
        self.record(query, n, candidates, self.moments.std(query))
        used = min(len(self.frames), self.p.length)
        if n == 0 or used < self.p.min_length:
            return None
        ends = self._ends(n, used)
        self.last_shortlist_size = len(ends)
        return self._score(ends, n, used)

    # --------------------------------------------------------------- shortlist
    def _ends(self, n: int, used: int) -> np.ndarray:
        frames = list(self.frames)[::-1]  # frames[k]: k frames back
        steps = self._steps(used)
        starts = [frames[0].candidates]
        for k in range(1, used):
            c = frames[k].candidates[: self.carry]
            if len(c):
                starts.append((c[:, None] + steps[k][None, :]).ravel())
        if self.prev_index is not None:
            starts.append(self.prev_index + np.arange(3))
        if len(self.prev_peaks):  # last frame's best-scoring ends (the runners-up live on)
            starts.append((self.prev_peaks[:, None] + np.arange(3)[None, :]).ravel())
        if not starts:
            return np.zeros(0, dtype=np.int64)
        return _window_union(np.unique(np.concatenate(starts)), self.radius, n)

    def _steps(self, used: int) -> list[np.ndarray]:
        """Distinct place offsets of the frame k back, per k (fixed per ``used``: cached)."""
        if used not in self._steps_cache:
            offs = self.p._offsets[:, :used]
            self._steps_cache[used] = [np.unique(offs[:, k]) for k in range(used)]
        return self._steps_cache[used]

    # --------------------------------------------------------------- scoring
    def _score(self, ends: np.ndarray, n: int, used: int) -> SequenceResult:
        p = self.p
        frames = list(self.frames)  # oldest first; the newest is frames[-1]
        offs = p._offsets[:, :used]  # (V, used)
        # Places each scored frame contributes from: j = end - offset.
        # (the distinct offsets only: ~12 of the 50 velocity x frame pairs; a quarter of the sort)
        need = self._contributing(ends, offs)
        vals = self._normalised(frames, need, used)  # (used, len(need)); 0 where missing
        j = ends[None, None, :] - offs[:, :, None]  # (V, used, ends): place of frame k back
        ok = j >= 0
        frame = (used - 1 - np.arange(used))[None, :, None]  # row of vals for k frames back
        terms = np.zeros(j.shape)
        if len(self._need_pos) <= need[-1]:
            self._need_pos = np.zeros(max(int(need[-1]) + 1, 2 * len(self._need_pos)), np.int32)
        self._need_pos[need] = np.arange(len(need), dtype=np.int32)
        terms[ok] = vals[np.broadcast_to(frame, j.shape)[ok], self._need_pos[j[ok]]]
        acc = terms.sum(axis=1)  # (V, ends)
        best_v = np.argmax(acc, axis=0)  # the first velocity of the best score, as the loop had
        best = acc[best_v, np.arange(len(ends))]
        sc = best / used
        i = int(np.argmax(sc))
        index = int(ends[i])
        outside = (ends < index - p.exclusion_window) | (ends > index + p.exclusion_window)
        score = float(sc[i])
        if outside.any():
            second = float(sc[outside].max())
            confidence = score - second
        else:
            second, confidence = -math.inf, 0.0
        self.prev_index = index
        self.prev_peaks = ends[np.argsort(-sc, kind="stable")[: self.peaks]]
        if self.dense_scores:
            full = np.full(n, -np.inf, dtype=np.float32)
            full[ends] = sc
        else:
            full = np.zeros(0, dtype=np.float32)
        return SequenceResult(
            index=index,
            score=score,
            second_score=second,
            confidence=confidence,
            velocity=p.velocities[int(best_v[i])],
            length_used=used,
            scores=full,
        )

    def _contributing(self, ends: np.ndarray, offs: np.ndarray) -> np.ndarray:
        """Sorted places ``end - offset`` (>= 0) over every end and frame offset: with the
        default velocities the distinct offsets are a run 0..M, so it is the union of windows
        [end - M, end], merged as runs instead of sorting ~18k ids per keyframe."""
        distinct = np.unique(offs)
        lo, hi = int(distinct[0]), int(distinct[-1])
        if len(distinct) == hi - lo + 1:
            return _window_union(ends - lo, hi - lo, int(ends[-1]) + 1, after=0)
        need = np.unique((ends[None, :] - distinct[:, None]).ravel())
        return need[need >= 0]

    def _normalised(self, frames: list[_Frame], need: np.ndarray, used: int) -> np.ndarray:
        """Normalised similarity of the last ``used`` frames to places ``need`` (sorted), as the
        full matcher's columns hold them; 0 where the place was not eligible for that frame.
        Values computed for an earlier frame are reused (see ``_upto``); what is new is
        computed for all places at once: (frames x places) arrays, no per-frame loop."""
        p = self.p
        r = p.contrast_window if p.contrast_normalise else 0
        n_g = np.array([f.n for f in frames])  # column lengths
        g_count = len(frames)
        rows = _window_union(need, r, int(n_g.max()))
        slots = self._slots(rows)
        s_need = slots[np.searchsorted(rows, need)]
        cols = self._columns()
        cont = self._upto[s_need] == self._frame_no - 1  # values known up to the last frame
        if not cont.all():  # every kept frame's values at the other places
            part = need[~cont]
            sub = _window_union(part, r, int(n_g.max()))
            sims = self._sims[slots[np.searchsorted(rows, sub)]][:, cols].T  # (G, len(sub))
            std = np.array([f.std for f in frames])
            z = self._contrast(sims, sub, part, n_g, std)  # (G, len(part))
            valid = part[None, :] < n_g[:, None]
            v = self._query_side(z, valid, used)
            s_part = s_need[~cont]
            self._z[np.ix_(s_part, cols)] = z.T
            self._v[np.ix_(s_part, cols[g_count - used :])] = v.T
        if cont.any():  # the newest frame's values at places known up to the last frame
            part = need[cont]
            sub = _window_union(part, r, int(n_g[-1]))
            sims = self._sims[slots[np.searchsorted(rows, sub)], cols[-1]][None, :]
            z = self._contrast(sims, sub, part, n_g[-1:], np.array([frames[-1].std]))
            s_part = s_need[cont]
            self._z[s_part, cols[-1]] = z[0]
            # query side: the cached z of the frames in the newest one's window
            back = min(max(p.query_window, 1), g_count)
            hist = self._z[s_part][:, cols[g_count - back :]].T  # (back, len(part))
            valid = part[None, :] < n_g[g_count - back :, None]
            self._v[s_part, cols[-1]] = self._query_side(hist, valid, 1)[0]
        self._upto[s_need] = self._frame_no
        return self._v[s_need][:, cols[g_count - used :]].T

    def _contrast(
        self, sims: np.ndarray, rows: np.ndarray, part: np.ndarray, n_g: np.ndarray,
        std: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """Map-side z-scores (frames x ``part``) from the similarities to ``rows`` (every id of
        each ``part`` place's window); 0 where a place was not eligible for the frame."""
        p = self.p
        n_col = n_g[:, None]
        valid = part[None, :] < n_col
        s_part = sims[:, np.searchsorted(rows, part)]
        if not p.contrast_normalise:
            return np.where(valid, s_part, 0.0)
        r = p.contrast_window
        zero = np.zeros((len(sims), 1))
        c1 = np.concatenate((zero, np.cumsum(sims, axis=1)), axis=1)
        c2 = np.concatenate((zero, np.cumsum(sims * sims, axis=1)), axis=1)
        lo = np.maximum(part - r, 0)
        a = np.searchsorted(rows, lo)  # rows hold every id of [lo, hi): windows are runs
        cnt = np.where(valid, np.minimum(part[None, :] + r + 1, n_col) - lo[None, :], 1)
        b = np.where(valid, a[None, :] + cnt, a[None, :])
        mean = (np.take_along_axis(c1, b, axis=1) - c1[:, a]) / cnt
        var = np.maximum((np.take_along_axis(c2, b, axis=1) - c2[:, a]) / cnt - mean * mean, 0)
        floor = p.std_floor * std[:, None]
        return np.where(valid, (s_part - mean) / np.sqrt(var + floor * floor + _EPS), 0.0)

    def _query_side(self, z: np.ndarray, valid: np.ndarray, used: int) -> np.ndarray:
        """The last ``used`` frames' values from every kept frame's map-side z-scores: each
        z-scored again over its last ``query_window`` frames (eligible ones)."""
        p = self.p
        g_count = len(z)
        qwin = p.query_window if p.contrast_normalise else 0
        last = z[g_count - used :]
        if qwin <= 1:
            return last
        zero = np.zeros((1, z.shape[1]))
        k1 = np.concatenate((zero, np.cumsum(z, axis=0)))  # z is 0 where not eligible
        k2 = np.concatenate((zero, np.cumsum(z * z, axis=0)))
        kv = np.concatenate((zero, np.cumsum(valid, axis=0)))
        g = np.arange(g_count - used, g_count)
        lo_g = np.maximum(0, g - qwin + 1)
        cnt = kv[g + 1] - kv[lo_g]
        den = np.maximum(cnt, 1)
        mean = (k1[g + 1] - k1[lo_g]) / den
        var = np.maximum((k2[g + 1] - k2[lo_g]) / den - mean * mean, 0.0)
        qz = (last - mean) / np.sqrt(var + p.std_floor**2 + _EPS)
        return np.where(valid[g_count - used :], np.where(cnt >= 2, qz, last), 0.0)


def _window_union(centres: np.ndarray, r: int, n: int, after: int | None = None) -> np.ndarray:
    """Sorted ids in [c - r, c + after] (``after`` defaults to ``r``) of any of the sorted
    ``centres``, clipped to [0, n): the same set as np.unique over every window, built from the
    merged runs instead of sorting them all."""
    if not len(centres):
        return np.zeros(0, dtype=np.int64)
    lo = np.maximum(centres - r, 0)
    hi = np.minimum(centres + (r if after is None else after) + 1, n)  # exclusive
    # A new run starts where a window begins after every earlier window has ended.
    reach = np.maximum.accumulate(hi)
    start = np.ones(len(lo), dtype=bool)
    start[1:] = lo[1:] > reach[:-1]
    run_lo = lo[start]
    run_hi = np.maximum.reduceat(hi, np.flatnonzero(start))
    keep = run_hi > run_lo
    run_lo, run_hi = run_lo[keep], run_hi[keep]
    lengths = run_hi - run_lo
    if not len(lengths):
        return np.zeros(0, dtype=np.int64)
    # Concatenated aranges: each run's first id, then +1 steps.
    step = np.ones(int(lengths.sum()), dtype=np.int64)
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    step[firsts] = run_lo - np.concatenate(([0], run_hi[:-1] - 1))
    step[0] = run_lo[0]
    return np.cumsum(step)
