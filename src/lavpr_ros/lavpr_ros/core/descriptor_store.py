"""Descriptor storage for large maps: float16 or float32 rows, read from the map file after a load.

A 1M-place map at 1280-d is 5.1 GB as float32 and 2.6 GB as float16 (6.7 GB at the default
encoder's 3328-d) - more than a small robot computer keeps in RAM. The faiss index holds
compressed codes (PCA-PQ) for the search itself; the full descriptors are only needed to
re-score a shortlist exactly and for sequence matching over local windows, so after a load they
stay in the saved ``.npy`` and the rows a frame needs are read with ``pread`` (runs of
consecutive rows in one call each). A memory map would serve the same rows, but every page it
ever touched stays in the process's resident set (2.5 GB after a few hundred random queries at
1M places); reads leave them in the kernel's page cache, which is shared and reclaimable. New
places go to a small in-RAM tail.

Old maps (a float32 ``descriptors.npy``) load unchanged; ``storage="float16"`` halves the file
(cosine error < 1e-3 on unit vectors).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}
# Auto index choice: exact search is cheapest (and exact) for small maps; above this many places
# a compressed full scan (PCA-PQ) with exact re-scoring keeps search fast and the index small.
AUTO_FLAT_BELOW = 50_000
_RAM_BELOW_BYTES = 256 * 2**20  # smaller maps load into RAM as float32 (BLAS-speed scans)
_CHUNK = 65_536  # rows converted to float32 per step in full scans (bounds temporary memory)


def choose_index(n: int, dim: int) -> dict[str, object]:
    """Index settings for a map of ``n`` places at ``dim``: why flat or PCA-PQ, with parameters.

    Above ``AUTO_FLAT_BELOW`` places: PCA-PQ (core/pca_pq.py: a full fast-scan of 4-bit codes
    of a 256-d projection, re-ranked with 8-bit codes, re-scored exactly). Measured on the default
    encoder's descriptors at 1M places (docs/scale.md): recall@5 0.965 of exact search in ~7 ms,
    320 B per place. IVF-PQ (1024 lists, nprobe 64) reached 0.85 in 22 ms (the neighbours of a
    query are spread over many lists); HNSW over PQ or SQ8 codes 0.64-0.72 (its graph navigates
    badly at this intrinsic dimension); a plain HNSW keeps float vectors (13 GB at 1M x 3328-d).
    The projection is fitted once, at the switch, on up to 20k places.
    """
    if n < AUTO_FLAT_BELOW:
        return {
            "index_type": "flat",
            "reason": f"{n} places < {AUTO_FLAT_BELOW}: exact search is fast enough",
        }
    return {
        "index_type": "pcapq",
        "pca_dim": int(min(256, dim - dim % 2)),
        "reason": f"{n} places >= {AUTO_FLAT_BELOW}: PCA-PQ fast scan, exact re-scoring",
    }


def as_float32(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows as float32 (written into ``out``, a C-contiguous float32 array of their shape, when
    given). float16 rows go through OpenCV's F16C conversion (exact, like any float16 ->
    float32 cast): for the ~1000 rows a keyframe's shortlist fetches at 3328-d, numpy's cast
    took 4.2 ms here and faiss's scalar-quantizer decoder 3.5 ms, OpenCV 1.2 ms."""
    if x.dtype != np.float16 or x.ndim != 2 or not len(x):
        if out is None:
            return np.asarray(x, dtype=np.float32)
        out[...] = x
        return out
    import cv2  # the runtime's image library; imported here so the core's import stays light

    src = np.ascontiguousarray(x)
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    assert out.dtype == np.float32 and out.shape == x.shape and out.flags.c_contiguous
    return cv2.convertFp16(src, out)


class DescriptorStore:
    """Rows ``0..len-1``: a read-only base (in RAM, or read from the map file) followed by an
    in-RAM growable tail."""

    def __init__(self, dim: int, storage: str = "float32") -> None:
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"storage must be one of {sorted(STORAGE_DTYPES)}, got {storage!r}")
        self.dim = int(dim)
        self.storage = storage
        self.dtype = np.dtype(STORAGE_DTYPES[storage])
        self._base = np.zeros((0, self.dim), dtype=self.dtype)
        self._tail = np.zeros((0, self.dim), dtype=self.dtype)
        self._n_tail = 0
        # A loaded large map: rows 0..len(_base)-1 are read from this file (data at _offset).
        self._fd: int | None = None
        self._offset = 0
        self._path: Path | None = None
        self._file_rows = 0

    def __len__(self) -> int:
        return self._nb + self._n_tail

    @property
    def _nb(self) -> int:
        return self._file_rows if self._fd is not None else len(self._base)

    @property
    def file_backed(self) -> bool:
        """True when the base rows stay in the map file (read on demand, not held in RAM)."""
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------ writing
    def append(self, rows: np.ndarray) -> None:
        """Append L2-normalised float32 rows (converted to the storage dtype)."""
        need = self._n_tail + len(rows)
        if need > len(self._tail):
            grown = np.zeros((max(need, 2 * len(self._tail), 64), self.dim), dtype=self.dtype)
            grown[: self._n_tail] = self._tail[: self._n_tail]
            self._tail = grown
        self._tail[self._n_tail : need] = rows
        self._n_tail = need

    def save(self, path: Path) -> None:
        """Write all rows as one ``.npy`` in the storage dtype (streamed, no full copy)."""
        n = len(self)
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                     "shape": (n, self.dim)}
            )  # fmt: skip
            for a, b in _chunks(n):
                fh.write(np.ascontiguousarray(self.slice(a, b), dtype=self.dtype).tobytes())

    @classmethod
    def load(cls, path: Path, count: int, dim: int) -> DescriptorStore:
        """Open a saved ``.npy`` (float32 or float16); ValueError names what is wrong with it.
        The file is read once: small maps into RAM, large ones chunk by chunk for the NaN check
        (their rows then stay in the file)."""
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
            storage = next((k for k, v in STORAGE_DTYPES.items() if np.dtype(v) == dtype), None)
            if storage is None or fortran or shape != (count, dim):
                raise ValueError(
                    f"descriptors are {dtype}{shape}, expected float32 or float16 ({count}, {dim})"
                )
            store = cls(dim, storage)
            small = count * dim * 4 < _RAM_BELOW_BYTES
            parts = []
            for a, b in _chunks(count):
                chunk = np.fromfile(fh, dtype=dtype, count=(b - a) * dim)
                if len(chunk) != (b - a) * dim:
                    raise ValueError(f"descriptors file is truncated at row {a}")
                if not np.isfinite(chunk).all():
                    raise ValueError("descriptors contain NaN/inf")
                if small:  # float32 in RAM (fast BLAS scans)
                    parts.append(as_float32(chunk.reshape(b - a, dim)))
        if small:
            store._base = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
            return store
        store._fd = os.open(path, os.O_RDONLY)
        store._offset = offset
        store._path = Path(path)
        store._file_rows = count
        return store

    # ------------------------------------------------------------------ reading
    def _read(self, a: int, b: int) -> np.ndarray:
        """File rows ``a:b`` in the storage dtype (one pread)."""
        row = self.dim * self.dtype.itemsize
        buf = os.pread(self._fd, (b - a) * row, self._offset + a * row)  # type: ignore[arg-type]
        if len(buf) != (b - a) * row:
            raise OSError(f"descriptors file {self._path} is shorter than its {self._nb} rows")
        return np.frombuffer(buf, dtype=self.dtype).reshape(b - a, self.dim)

    def _base_rows(self, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Base rows ``ids`` (sorted, unique) in the storage dtype (into ``out`` when given):
        one read per run of consecutive ids (sequence windows are runs, so a frame needs few
        reads)."""
        if self._fd is None:
            if out is None:
                return self._base[ids]
            np.take(self._base, ids, axis=0, out=out)
            return out
        if out is None:
            out = np.empty((len(ids), self.dim), dtype=self.dtype)
        if not len(ids):
            return out
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [len(ids)]))
        row = self.dim * self.dtype.itemsize
        for s0, e0 in zip(starts.tolist(), ends.tolist(), strict=True):
            a = int(ids[s0])
            view = memoryview(out[s0:e0]).cast("B")  # read straight into ``out``
            if os.preadv(self._fd, [view], self._offset + a * row) != len(view):  # type: ignore[arg-type]
                raise OSError(f"descriptors file {self._path} is shorter than its {self._nb} rows")
        return out

    @property
    def native_rows(self) -> bool:
        """True when every row is held in the storage dtype (a small float16 map loaded into
        RAM holds its base as float32 instead)."""
        return self._fd is not None or self._base.dtype == self.dtype

    def sorted_rows_native(self, ids: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Rows ``ids`` (sorted, unique) in the storage dtype, written into ``out`` (a
        C-contiguous array of at least ``len(ids)`` rows: a buffer the shortlist keeps across
        keyframes, so the rows are not copied again on their way to its row cache). Returns
        ``out[:len(ids)]``."""
        m = len(ids)
        assert self.native_rows and out.dtype == self.dtype
        assert out.flags.c_contiguous and len(out) >= m
        dst = out[:m]
        k = int(np.searchsorted(ids, self._nb))
        if k:
            self._base_rows(ids[:k], dst[:k])
        if k < m:
            np.take(self._tail, ids[k:] - self._nb, axis=0, out=dst[k:])
        return dst

    def slice(self, a: int, b: int, native: bool = False) -> np.ndarray:
        """Rows ``a:b`` as float32 (or the storage dtype with ``native``)."""
        nb = self._nb

        def base(x: int, y: int) -> np.ndarray:
            return self._read(x, y) if self._fd is not None else self._base[x:y]

        if b <= nb:
            out = base(a, b)
        elif a >= nb:
            out = self._tail[a - nb : b - nb]
        else:
            out = np.concatenate((base(a, nb), self._tail[: b - nb]))
        return out if native else as_float32(out)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` (any order, repeats allowed) as float32."""
        ids = np.asarray(ids, dtype=np.int64)
        nb = self._nb
        if len(ids) < 2 or bool((np.diff(ids) > 0).all()):
            # Sorted and unique (the shortlist's case): base rows, then appended ones, each
            # decoded straight into its block of the output (a shortlist at 1M places mixes
            # the two on every keyframe: the new route's places are appended ones).
            k = int(np.searchsorted(ids, nb))
            if k == len(ids):
                return as_float32(self._base_rows(ids))
            out = np.empty((len(ids), self.dim), dtype=np.float32)
            if k:
                as_float32(self._base_rows(ids[:k]), out[:k])
            as_float32(self._tail[ids[k:] - nb], out[k:])
            return out
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        in_base = ids < nb
        if in_base.any():
            uniq, inverse = np.unique(ids[in_base], return_inverse=True)
            out[in_base] = as_float32(self._base_rows(uniq))[inverse]
        if (~in_base).any():
            out[~in_base] = as_float32(self._tail[ids[~in_base] - nb])
        return out

    def dot(self, q: np.ndarray, stop: int | None = None) -> np.ndarray:
        """(stop,) inner products of rows ``0:stop`` with ``q`` (float32), chunked for float16."""
        stop = len(self) if stop is None else int(stop)
        if self._base.dtype == np.float32 and self._fd is None and stop <= len(self._base):
            return self._base[:stop] @ q
        out = np.empty(stop, dtype=np.float32)
        for a, b in _chunks(stop):
            out[a:b] = self.slice(a, b) @ q
        return out

    def full(self) -> np.ndarray:
        """All rows as one array in the storage dtype (a read-only memory map of a loaded large
        map's file when nothing was appended: whole-map consumers page it in themselves)."""
        if self._fd is not None:
            base = np.memmap(
                self._path, dtype=self.dtype, mode="r", offset=self._offset,
                shape=(self._file_rows, self.dim),
            )  # fmt: skip
        else:
            base = self._base
        if self._n_tail == 0 and base.dtype == self.dtype:
            return base
        if len(base) == 0:
            return self._tail[: self._n_tail]
        return np.concatenate((base.astype(self.dtype), self._tail[: self._n_tail]))


def _chunks(n: int, size: int = _CHUNK):
    for a in range(0, n, size):
        yield a, min(n, a + size)
