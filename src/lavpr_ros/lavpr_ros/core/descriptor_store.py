"""Descriptor storage for large maps: float16 or float32 rows, memory-mapped after a load.

A 1M-place map at 1280-d is 5.1 GB as float32 and 2.6 GB as float16 - more than a small robot
computer keeps in RAM. The faiss index holds compressed codes (IVF-PQ) for the search itself;
the full descriptors are only needed to re-score a shortlist exactly and for sequence matching
over local windows, so after a load they stay in a read-only memory-mapped ``.npy`` file (the
page cache serves the rows actually touched) and new places go to a small in-RAM tail.

Old maps (a float32 ``descriptors.npy``) load unchanged; ``storage="float16"`` only halves the
file and the page-cache footprint (cosine error < 1e-3 on unit vectors).
"""

from __future__ import annotations

import math
import mmap as mmap_module
from pathlib import Path

import numpy as np

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}
# Auto index choice: exact search is cheapest (and exact) for small maps; above this many places
# IVF-PQ with exact re-scoring keeps per-frame search flat and the index small.
AUTO_FLAT_BELOW = 50_000
_RAM_BELOW_BYTES = 256 * 2**20  # smaller maps load into RAM as float32 (BLAS-speed scans)
_CHUNK = 65_536  # rows converted to float32 per step in full scans (bounds temporary memory)


def choose_index(n: int, dim: int) -> dict[str, object]:
    """Index settings for a map of ``n`` places at ``dim``: why flat or IVF-PQ, with parameters.

    HNSW is not chosen automatically: its graph plus float vectors cost > 5 KB/place at 1280-d
    (5 GB at 1M), which breaks the memory budget that IVF-PQ meets with 64 B/place codes.
    """
    if n < AUTO_FLAT_BELOW:
        return {
            "index_type": "flat",
            "reason": f"{n} places < {AUTO_FLAT_BELOW}: exact search is fast enough",
        }
    # ~sqrt(N) lists (a power of two): k-means on 39 points per list stays ~1 min at 1M on 2 cores.
    nlist = 2 ** round(math.log2(math.sqrt(n)))
    nlist = max(1, min(nlist, n // 39))  # faiss k-means wants >= 39 points per list
    pq_m = _pq_m_for(dim)
    return {
        "index_type": "ivfpq",
        "ivf_nlist": int(nlist),
        "pq_m": int(pq_m),
        "ivf_nprobe": int(max(32, nlist // 8)),
        "reason": f"{n} places >= {AUTO_FLAT_BELOW}: IVF-PQ, exact re-scoring of candidates",
    }


def _pq_m_for(dim: int) -> int:
    """Sub-quantisers: ~20 dims each (64 for 1280-d, 32 for 512-d), dividing ``dim``."""
    target = max(1, dim // 20)
    for m in sorted(range(1, dim + 1), key=lambda m: (abs(m - target), -m)):
        if dim % m == 0 and m <= 96:
            return m
    return 1


class DescriptorStore:
    """Rows ``0..len-1``: a read-only (memory-mapped) base followed by an in-RAM growable tail."""

    def __init__(self, dim: int, storage: str = "float32") -> None:
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"storage must be one of {sorted(STORAGE_DTYPES)}, got {storage!r}")
        self.dim = int(dim)
        self.storage = storage
        self.dtype = np.dtype(STORAGE_DTYPES[storage])
        self._base = np.zeros((0, self.dim), dtype=self.dtype)
        self._tail = np.zeros((0, self.dim), dtype=self.dtype)
        self._n_tail = 0

    def __len__(self) -> int:
        return len(self._base) + self._n_tail

    @property
    def memory_mapped(self) -> bool:
        return isinstance(self._base, np.memmap)

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
    def load(cls, path: Path, count: int, dim: int, mmap: bool = True) -> DescriptorStore:
        """Open a saved ``.npy`` (float32 or float16); ValueError names what is wrong with it."""
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            storage = next((k for k, v in STORAGE_DTYPES.items() if np.dtype(v) == dtype), None)
            if storage is None or fortran or shape != (count, dim):
                raise ValueError(
                    f"descriptors are {dtype}{shape}, expected float32 or float16 ({count}, {dim})"
                )
            # NaN check with plain reads, chunk by chunk: touching a memory map would count the
            # whole file in this process's resident memory.
            for a, b in _chunks(count):
                chunk = np.fromfile(fh, dtype=dtype, count=(b - a) * dim)
                if len(chunk) != (b - a) * dim:
                    raise ValueError(f"descriptors file is truncated at row {a}")
                if not np.isfinite(chunk).all():
                    raise ValueError("descriptors contain NaN/inf")
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        mm = getattr(arr, "_mmap", None)
        if mm is not None and hasattr(mmap_module, "MADV_RANDOM"):
            # Re-scoring reads scattered rows: without this, kernel read-ahead pulls most of the
            # file into this process's resident set (2.5 GB at 1M x 1280 float16).
            mm.madvise(mmap_module.MADV_RANDOM)
        store = cls(dim, storage)
        if not mmap or count * dim * 4 < _RAM_BELOW_BYTES:
            arr = np.array(arr, dtype=np.float32)  # small maps: float32 in RAM (fast BLAS scans)
        store._base = arr
        return store

    # ------------------------------------------------------------------ reading
    def slice(self, a: int, b: int, native: bool = False) -> np.ndarray:
        """Rows ``a:b`` as float32 (or the storage dtype with ``native``)."""
        nb = len(self._base)
        if b <= nb:
            out = self._base[a:b]
        elif a >= nb:
            out = self._tail[a - nb : b - nb]
        else:
            out = np.concatenate((self._base[a:], self._tail[: b - nb]))
        return out if native else np.asarray(out, dtype=np.float32)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` (any order, repeats allowed) as float32."""
        ids = np.asarray(ids, dtype=np.int64)
        nb = len(self._base)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        in_base = ids < nb
        if in_base.all() and (len(ids) < 2 or bool((np.diff(ids) > 0).all())):
            return np.asarray(self._base[ids], dtype=np.float32)  # sorted: one gather
        if in_base.any():
            sel = ids[in_base]
            order = np.argsort(sel, kind="stable")  # sorted reads are page-cache friendly
            got = np.empty((len(sel), self.dim), dtype=np.float32)
            got[order] = self._base[sel[order]]
            out[in_base] = got
        if (~in_base).any():
            out[~in_base] = self._tail[ids[~in_base] - nb]
        return out

    def dot(self, q: np.ndarray, stop: int | None = None) -> np.ndarray:
        """(stop,) inner products of rows ``0:stop`` with ``q`` (float32), chunked for float16."""
        stop = len(self) if stop is None else int(stop)
        if self._base.dtype == np.float32 and not self.memory_mapped and stop <= len(self._base):
            return self._base[:stop] @ q
        out = np.empty(stop, dtype=np.float32)
        for a, b in _chunks(stop):
            out[a:b] = self.slice(a, b) @ q
        return out

    def window_dot(self, queries: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """(len(queries), hi - lo) inner products of rows ``lo:hi`` with each query row."""
        return queries @ self.slice(lo, hi).T

    def full(self) -> np.ndarray:
        """All rows as one array in the storage dtype (a view when nothing was appended)."""
        if self._n_tail == 0 and self._base.dtype == self.dtype:
            return self._base
        if len(self._base) == 0:
            return self._tail[: self._n_tail]
        return np.concatenate((self._base.astype(self.dtype), self._tail[: self._n_tail]))


def _chunks(n: int, size: int = _CHUNK):
    for a in range(0, n, size):
        yield a, min(n, a + size)
