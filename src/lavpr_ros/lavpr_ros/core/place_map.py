"""The persistent map of places: descriptors in a faiss index plus stamps, poses and text.

Every place's pose carries the frame it was recorded in (REP-105: ``map`` from a localiser or
SLAM, ``odom`` from odometry). Frames are stored, never relabelled: poses in ``odom`` do not
survive a restart (odometry starts again at the origin), which ``odom_warning`` says.

Ids are rows (0, 1, 2, ...), so the faiss index, the float32 descriptor copy (which sequence
matching needs in full) and the SQLite metadata never need an id translation table. Maps are
saved as a directory that is swapped in atomically, so a robot killed mid-save keeps a map.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

import faiss
import numpy as np
import yaml

from .descriptor_store import AUTO_FLAT_BELOW, STORAGE_DTYPES, DescriptorStore, choose_index
from .feature_store import FILE as FEATURES_FILE
from .feature_store import FeatureStore, FeatureStoreError
from .manifest import sha256_file
from .pca_pq import check_pca_pq, new_pca_pq, set_search_defaults, train_pca_pq
from .poses import validate_pose

FORMAT_VERSION = 1
INDEX_TYPES = ("flat", "hnsw", "ivfpq", "hnswpq", "pcapq")
INDEX_REQUESTS = (*INDEX_TYPES, "auto")  # auto: flat below AUTO_FLAT_BELOW places, then PCA-PQ
# Compressed indexes: trained before use, candidates re-scored with the stored rows.
PQ_TYPES = ("ivfpq", "hnswpq", "pcapq")
FILES = ("index.faiss", "places.sqlite", "descriptors.npy")
MANIFEST = "manifest.yaml"
# Every name a map directory (or a save's temp copy) may contain: a sibling folder holding
# anything else is not recognisably this map's leftover and is never deleted.
OWN_NAMES = frozenset((*FILES, FEATURES_FILE, MANIFEST, MANIFEST + ".part"))
SAVING_SUFFIX = ".saving"  # sibling dir being written
ASIDE_SUFFIX = ".old"  # previous map moved aside during the swap
# IVF-PQ k-means wants ~39 points per centroid (faiss warns below that), and PQ's 256 codes too.
_MIN_POINTS_PER_CENTROID = 39
_PQ_CODES = 256
# PQ candidates per result (first 5 ranks), re-scored exactly with the stored rows: 200 for k=5.
# PCA-PQ's 200 survivors of its SQ8 re-ranking hold the exact top 5 for 0.965 at 1M places
# (default encoder, 3328-d; docs/scale.md); an explicit IVF-/HNSW-PQ with coarse codes (16
# sub-quantisers by default) ranks worse, so it is a floor rather than a parameter.
_PQ_REFINE = 40
_PQ_TRAIN_SAMPLE = 50_000  # HNSW-PQ codebooks: trained on up to this many places
# PCA-PQ (core/pca_pq.py): the projection is fitted on up to this many places (2-3 s at 3328-d).
_PCA_TRAIN_SAMPLE = 20_000
_PCA_ADD_BATCH = 256  # places added to a PCA-PQ index at once (see PlaceMap._pending_max)


class MapFormatError(ValueError):
    """A saved map whose files are missing, corrupt or inconsistent (names the file)."""


class MapTargetError(ValueError):
    """A save target that is not a lavpr map (a file, or a directory holding other things)."""


class MapMismatchError(ValueError):
    """A saved map built with another model or descriptor dimension than the current encoder."""


def is_odom_frame(frame_id: str) -> bool:
    """A REP-105 odometry frame (``odom``, also namespaced ``robot1/odom``): continuous but
    drifting, and reset when odometry restarts."""
    return str(frame_id).strip("/").rsplit("/", 1)[-1] == "odom"


ODOM_WARNING = (
    "poses in odom do not survive a restart; use a map-frame pose source "
    "(pose_source pose_cov with a localiser's pose, or tf)"
)


@dataclass
class Place:
    """One mapped place; ``pose`` is (x, y, z, qx, qy, qz, qw) in frame ``frame_id``, or None."""

    id: int
    stamp: float
    pose: np.ndarray | None
    description: str = ""
    session: int = 0  # mapping session that added it (a loaded map's places: earlier sessions)
    frame_id: str = "map"  # the frame the pose was recorded in


class _PlacesView:
    """Iterable/sized view of the places (also callable, so ``m.places()`` works too)."""

    def __init__(self, owner: PlaceMap) -> None:
        self._owner = owner

    def __iter__(self) -> Iterator[Place]:
        return (self._owner.get(i) for i in range(len(self._owner)))

    def __len__(self) -> int:
        return len(self._owner)

    def __call__(self) -> _PlacesView:
        return self


class PlaceMap:
    """Places with L2-normalised descriptors, searchable by cosine similarity.

    ``frame_id`` is the frame of places added without one (and of every place of a map saved
    before places had their own frame); each place keeps the frame its pose was recorded in.

    ``index_type``: ``flat`` (exact inner product), ``hnsw`` (graph, approximate), ``ivfpq``,
    ``hnswpq`` or ``pcapq`` (compressed: an inverted file or an HNSW graph over product-quantised
    codes, or a full fast scan of 4-bit codes of a ``pca_dim`` projection, core/pca_pq.py;
    trained once ``ivf_train_size`` places exist, exact search until then, and candidates are
    re-scored exactly so the scores returned are always true cosines) or ``auto`` (flat,
    switched once to PCA-PQ when the map reaches ``AUTO_FLAT_BELOW`` places; the choice and its
    reason are saved in the manifest). ``storage``: ``float32`` or
    ``float16`` descriptor rows (see core/descriptor_store.py; read from the file after a load).
    """

    def __init__(
        self,
        dim: int,
        model_id: str,
        index_type: str = "flat",
        frame_id: str = "map",
        hnsw_m: int = 32,
        ivf_nlist: int = 1024,
        pq_m: int = 16,
        ivf_nprobe: int = 16,
        hnsw_ef_search: int = 128,
        hnsw_ef_construction: int = 40,
        storage: str = "float32",
        pca_dim: int = 256,
    ) -> None:
        if int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if index_type not in INDEX_REQUESTS:
            raise ValueError(
                f"index_type must be one of {', '.join(INDEX_REQUESTS)}, got {index_type!r}"
            )
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"storage must be one of {sorted(STORAGE_DTYPES)}, got {storage!r}")
        if not model_id:
            raise ValueError("model_id must be a non-empty string")
        params = {
            "hnsw_m": hnsw_m,
            "ivf_nlist": ivf_nlist,
            "pq_m": pq_m,
            "ivf_nprobe": ivf_nprobe,
            "hnsw_ef_search": hnsw_ef_search,
            "hnsw_ef_construction": hnsw_ef_construction,
            "pca_dim": pca_dim,
        }
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if hnsw_m < 2 or hnsw_m > 512:
            raise ValueError(f"hnsw_m must be in 2..512, got {hnsw_m}")
        if index_type in ("ivfpq", "hnswpq") and dim % pq_m:
            raise ValueError(f"dim {dim} is not divisible by pq_m {pq_m} (needed by PQ)")
        if pca_dim % 2:
            raise ValueError(f"pca_dim must be even (2 dims per 4-bit code), got {pca_dim}")
        self.dim = int(dim)
        self.model_id = str(model_id)
        self.index_request = index_type
        self.index_type = "flat" if index_type == "auto" else index_type
        self.index_reason = "" if index_type != "auto" else str(choose_index(0, dim)["reason"])
        self.frame_id = _check_frame(frame_id)
        self.hnsw_m = int(hnsw_m)
        self.ivf_nlist = int(ivf_nlist)
        self.pq_m = int(pq_m)
        self.ivf_nprobe = int(ivf_nprobe)
        self.hnsw_ef_search = int(hnsw_ef_search)
        self.hnsw_ef_construction = int(hnsw_ef_construction)
        self.pca_dim = min(int(pca_dim), self.dim - self.dim % 2)  # a 128-d map: rotation only
        self.tags: dict[str, str] = {}
        self.created = time.time()
        self._n = 0
        # Decoded rows of the places searched exactly outside the index: (buffer, first id, rows)
        self._pending32: tuple[np.ndarray, int, int] = (np.zeros((0, self.dim), np.float32), -1, 0)
        self._store = DescriptorStore(self.dim, storage)
        self._stamps = np.zeros(0, dtype=np.float64)
        self._poses = np.zeros((0, 7), dtype=np.float64)
        self._has_pose = np.zeros(0, dtype=bool)
        self._session = np.zeros(0, dtype=np.int32)
        self._text: list[str] = []
        self._frames: list[str] = []
        # Places are added by mapping sessions: a loaded map's places belong to earlier ones and
        # new places to ``session_id``, starting at id ``session_start``. Temporal exclusion
        # (loop closures) applies within the current session only.
        self.session_id = 0
        self.session_start = 0
        # Local features of keyframes for geometric verification (saved in the map directory;
        # a map saved before features existed loads with an empty store).
        self.features = FeatureStore()
        self._monotone = True  # stamps non-decreasing: stamp exclusion is an id prefix
        self.index = self._new_index()

    # ----------------------------------------------------------------- index
    @property
    def ivf_train_size(self) -> int:
        """Places needed before a PQ index is trained (exact search until then)."""
        if self.index_type == "hnswpq":
            return _MIN_POINTS_PER_CENTROID * _PQ_CODES
        if self.index_type == "pcapq":  # 4-bit codes (16 centroids); PCA wants rows >> pca_dim
            return max(_MIN_POINTS_PER_CENTROID * 16, 4 * self.pca_dim)
        return _MIN_POINTS_PER_CENTROID * max(self.ivf_nlist, _PQ_CODES)

    def _new_index(self) -> faiss.Index:
        if self.index_type == "flat":
            return faiss.IndexFlatIP(self.dim)
        if self.index_type == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.hnsw_ef_construction
            index.hnsw.efSearch = self.hnsw_ef_search
            return index
        if self.index_type == "hnswpq":
            index = faiss.IndexHNSWPQ(
                self.dim, self.pq_m, self.hnsw_m, 8, faiss.METRIC_INNER_PRODUCT
            )
            index.hnsw.efConstruction = self.hnsw_ef_construction
            index.hnsw.efSearch = self.hnsw_ef_search
            return index
        if self.index_type == "pcapq":
            return new_pca_pq(self.dim, self.pca_dim)
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFPQ(
            quantizer, self.dim, self.ivf_nlist, self.pq_m, 8, faiss.METRIC_INNER_PRODUCT
        )
        index.own_fields = True
        quantizer.this.disown()  # the index owns (and frees) its quantizer
        index.nprobe = self.ivf_nprobe
        return index

    def _index_ready(self) -> bool:
        """The index answers searches: trained and holding every place but the pending ones."""
        return bool(self.index.is_trained) and self._n - self.index.ntotal <= self._pending_max

    @property
    def _pending_max(self) -> int:
        """Places that may wait outside the index (searched exactly): PCA-PQ adds in batches,
        because each add to a fast-scan index re-allocates its whole code table (~4 ms at 1M
        places, up to 17 ms, per keyframe)."""
        return _PCA_ADD_BATCH - 1 if self.index_type == "pcapq" else 0

    def _pending_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start..stop-1`` (places not in the index yet) as float32, decoded once: they
        are searched exactly on every query until their batch enters the index, and decoding
        up to 255 float16 rows anew on every keyframe was avoidable work."""
        buf, first, count = self._pending32
        if first != start or len(buf) < stop - start:  # a batch entered the index: start over
            buf = np.empty((max(_PCA_ADD_BATCH, stop - start), self.dim), dtype=np.float32)
            first, count = start, 0
        if stop - start > count:  # places are never changed once added: only new ones decode
            buf[count : stop - start] = self._store.slice(start + count, stop)
            count = stop - start
        self._pending32 = (buf, first, count)
        return buf[: stop - start]

    def _flush_index(self) -> None:
        """Add the pending places (before a save: the index file holds every place)."""
        if self.index.is_trained and self.index.ntotal < self._n:
            self._index_add(flush=True)

    def _index_add(self, flush: bool = False) -> None:
        """Bring the faiss index up to date with the places (training a PQ index when due;
        PCA-PQ waits for a batch unless ``flush``)."""
        if self.index_type in PQ_TYPES and not self.index.is_trained:
            if self._n < self.ivf_train_size:
                return
            # k-means cost grows with points; a sample suffices
            cap = {"hnswpq": _PQ_TRAIN_SAMPLE, "pcapq": _PCA_TRAIN_SAMPLE}.get(self.index_type, 0)
            cap = max(self.ivf_train_size, cap)
            if self._n > cap:
                pick = np.random.default_rng(0).choice(self._n, cap, replace=False)
                sample = self._store.rows(np.sort(pick))
            else:
                sample = self._store.slice(0, self._n)
            if self.index_type == "pcapq":
                train_pca_pq(self.index, sample)
            else:
                self.index.train(sample)
            flush = True
        start = int(self.index.ntotal)  # the index holds a prefix of the places
        if not flush and self._n - start <= self._pending_max:
            return
        for a in range(start, self._n, 65_536):  # float32 chunks of a float16/file-backed store
            self.index.add(self._store.slice(a, min(self._n, a + 65_536)))

    def index_choice_reason(self) -> str:
        """Why the map has its index (saved in the manifest's ``index_choice``)."""
        if self.index_request == "auto" and self.index_type == "flat":
            return str(choose_index(self._n, self.dim)["reason"])
        return self.index_reason or f"index_type {self.index_request} requested"

    def _take_auto_choice(self) -> None:
        """``auto``: the index ``choose_index`` picks for the map's current size, and why."""
        choice = choose_index(self._n, self.dim)
        self.index_type = str(choice["index_type"])
        self.index_reason = str(choice["reason"])
        for key in ("ivf_nlist", "pq_m", "ivf_nprobe", "hnsw_m", "hnsw_ef_search", "pca_dim"):
            if key in choice:
                setattr(self, key, int(choice[key]))  # type: ignore[call-overload]

    def _maybe_switch_index(self) -> bool:
        """``auto``: replace the flat index by PCA-PQ once the map is large (True
        when it did: the new index then holds every place)."""
        if self.index_request != "auto" or self.index_type != "flat" or self._n < AUTO_FLAT_BELOW:
            return False
        self._take_auto_choice()
        self.index = self._new_index()
        self._index_add()
        return True

    def reindex(self) -> None:
        """Rebuild the index from the stored rows: ``auto`` re-chooses it for the map's size, and
        a compressed index is retrained on a sample of *all* places (a PCA-PQ projection fitted
        at the 50k-place switch only knows the surroundings mapped by then)."""
        if self.index_request == "auto":
            self._take_auto_choice()
        self.index = self._new_index()
        self._index_add(flush=True)

    # ----------------------------------------------------------------- adding
    def _grow(self, extra: int) -> None:
        need = self._n + extra
        cap = len(self._stamps)
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 64)
        stamps = np.zeros(new_cap, dtype=np.float64)
        stamps[: self._n] = self._stamps[: self._n]
        poses = np.full((new_cap, 7), np.nan, dtype=np.float64)
        poses[: self._n] = self._poses[: self._n]
        has = np.zeros(new_cap, dtype=bool)
        has[: self._n] = self._has_pose[: self._n]
        self._stamps, self._poses, self._has_pose = stamps, poses, has
        sess = np.zeros(new_cap, dtype=np.int32)
        sess[: self._n] = self._session[: self._n]
        self._session = sess

    def _check_descriptors(self, x: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows as float32, their L2 norms); refuses wrong shape, NaN/inf and zero rows."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape (N, {self.dim}), got {arr.shape}")
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)[:10].tolist()
            raise ValueError(f"{what} has NaN/inf values (rows {rows})")
        norms = np.linalg.norm(arr, axis=1)
        if (norms <= 1e-12).any():
            rows = np.flatnonzero(norms <= 1e-12)[:10].tolist()
            raise ValueError(f"{what} is all-zero (rows {rows}); it has no direction to match")
        return arr, norms

    def add(
        self,
        descriptor: Any,
        stamp: float,
        pose: Any = None,
        description: str = "",
        frame_id: str | None = None,
    ) -> int:
        """Add one place (its pose in ``frame_id``, default the map's ``frame_id``); returns its
        id. Nothing is stored if any argument is invalid."""
        d = np.asarray(descriptor, dtype=np.float32)
        if d.shape != (self.dim,):
            raise ValueError(f"descriptor must have shape ({self.dim},), got {d.shape}")
        poses = None if pose is None else [pose]
        frames = None if frame_id is None else [frame_id]
        return self.add_batch(d[None], [stamp], poses, [description], frames)[0]

    def add_batch(
        self,
        descriptors: Any,
        stamps: Sequence[float] | np.ndarray,
        poses: Sequence[Any] | None = None,
        descriptions: Sequence[str] | None = None,
        frame_ids: Sequence[str] | None = None,
    ) -> list[int]:
        """Add many places at once (one faiss call); all-or-nothing validation. ``frame_ids``:
        the frame of each pose (default: the map's ``frame_id``)."""
        x, norms = self._check_descriptors(descriptors, "descriptor")
        n = len(x)
        st = np.asarray(stamps, dtype=np.float64).reshape(-1)
        if len(st) != n:
            raise ValueError(f"got {n} descriptors but {len(st)} stamps")
        if not np.isfinite(st).all():
            raise ValueError("stamp must be a finite number of seconds")
        if poses is not None and len(poses) != n:
            raise ValueError(f"got {n} descriptors but {len(poses)} poses")
        vp = [None] * n if poses is None else [validate_pose(p) for p in poses]
        texts = [""] * n if descriptions is None else [str(t) for t in descriptions]
        if len(texts) != n:
            raise ValueError(f"got {n} descriptors but {len(texts)} descriptions")
        frames = [self.frame_id] * n if frame_ids is None else [_check_frame(f) for f in frame_ids]
        if len(frames) != n:
            raise ValueError(f"got {n} descriptors but {len(frames)} frame ids")
        if n == 0:
            return []
        start = self._n
        self._grow(n)
        end = start + n
        self._store.append(x / norms[:, None])
        self._stamps[start:end] = st
        self._session[start:end] = self.session_id
        for i, p in enumerate(vp):
            if p is not None:
                self._poses[start + i] = p
                self._has_pose[start + i] = True
        self._text.extend(texts)
        self._frames.extend(frames)
        prev = self._stamps[start - 1] if start else -math.inf
        self._monotone = self._monotone and bool(st[0] >= prev) and bool((np.diff(st) >= 0).all())
        self._n = end
        if not self._maybe_switch_index():
            self._index_add()
        return list(range(start, end))

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return self._n

    @property
    def last_id(self) -> int | None:
        """Id of the newest place, or None for an empty map."""
        return self._n - 1 if self._n else None

    @property
    def descriptors(self) -> np.ndarray:
        """(N, dim) L2-normalised descriptors in id order (read-only; float16 with that storage,
        a memory map of the file after a large map's load - :meth:`descriptor_rows` reads a few
        rows as float32)."""
        view = self._store.full()[: self._n].view()
        view.flags.writeable = False
        return view

    @property
    def store(self) -> DescriptorStore:
        """The descriptor rows (windowed/row access without materialising the whole map)."""
        return self._store

    def descriptor_rows(self, ids: Any) -> np.ndarray:
        """Rows ``ids`` as float32 (reads only those rows of a large loaded map's file)."""
        return self._store.rows(np.asarray(ids, dtype=np.int64))

    @property
    def stamps(self) -> np.ndarray:
        """(N,) stamps in seconds, in id order (read-only view)."""
        view = self._stamps[: self._n]
        view.flags.writeable = False
        return view

    @property
    def places(self) -> _PlacesView:
        """All places in id order."""
        return _PlacesView(self)

    def _check_id(self, place_id: int) -> int:
        i = int(place_id)
        if not 0 <= i < self._n:
            raise KeyError(f"no place with id {place_id} (map has ids 0..{self._n - 1})")
        return i

    def get(self, place_id: int) -> Place:
        """The place with this id (pose copied)."""
        i = self._check_id(place_id)
        pose = self._poses[i].copy() if self._has_pose[i] else None
        return Place(
            id=i,
            stamp=float(self._stamps[i]),
            pose=pose,
            description=self._text[i],
            session=int(self._session[i]),
            frame_id=self._frames[i],
        )

    @property
    def frame_ids(self) -> list[str]:
        """The frame of each place's pose, in id order (a copy)."""
        return list(self._frames[: self._n])

    def pose_frames(self) -> list[str]:
        """The distinct frames of the places that have a pose, in order of first use."""
        seen: dict[str, None] = {}
        for i in np.flatnonzero(self._has_pose[: self._n]):
            seen.setdefault(self._frames[int(i)], None)
        return list(seen)

    def odom_warning(self) -> str | None:
        """A warning when places have poses in an odometry frame (lost at the next restart)."""
        odom = [f for f in self.pose_frames() if is_odom_frame(f)]
        if not odom:
            return None
        n = sum(1 for i in np.flatnonzero(self._has_pose[: self._n]) if self._frames[i] in odom)
        return f"{n} place(s) have poses in {', '.join(odom)}: {ODOM_WARNING}"

    @property
    def sessions(self) -> np.ndarray:
        """(N,) mapping session of each place, in id order (read-only view)."""
        view = self._session[: self._n]
        view.flags.writeable = False
        return view

    def begin_session(self) -> int:
        """Places added from now on form a new mapping session (a robot reusing a saved map):
        earlier places stay matchable whatever their stamps. Returns the new session id."""
        if self._n:
            self.session_id = int(self._session[: self._n].max()) + 1
        self.session_start = self._n
        return self.session_id

    def correct_poses(
        self, stamps: Any, poses: Any, tol_s: float = 1e-3, frame_id: str | None = None
    ) -> int:
        """Replace the poses of the places whose stamps match (within ``tol_s``) by corrected
        ones (pose graph output) in ``frame_id`` (None: each place keeps its frame); returns how
        many places changed. Unmatched stamps are ignored; a bad pose raises ValueError before
        anything changes."""
        st = np.asarray(stamps, dtype=np.float64).reshape(-1)
        frame = None if frame_id is None else _check_frame(frame_id)
        new = [validate_pose(p) for p in poses]
        if len(new) != len(st):
            raise ValueError(f"{len(st)} stamps but {len(new)} poses")
        if self._n == 0:
            return 0
        mine = self._stamps[: self._n]
        order = np.argsort(mine, kind="stable")
        pos = np.clip(np.searchsorted(mine[order], st), 1, max(1, self._n - 1))
        changed = 0
        for j, s in enumerate(st):
            cands = [order[k] for k in {int(pos[j]) - 1, min(int(pos[j]), self._n - 1)}]
            best = min(cands, key=lambda i: abs(mine[i] - s))
            if abs(mine[best] - s) <= tol_s and new[j] is not None:
                self._poses[best] = new[j]
                self._has_pose[best] = True
                if frame is not None:
                    self._frames[best] = frame
                changed += 1
        return changed

    def set_description(self, place_id: int, text: str) -> None:
        """Attach free text (e.g. a language caption) to a place."""
        self._text[self._check_id(place_id)] = str(text)

    # ----------------------------------------------------------------- search
    def _check_query(self, query: Any) -> np.ndarray:
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self.dim,):
            raise ValueError(f"query must have shape ({self.dim},), got {q.shape}")
        arr, norms = self._check_descriptors(q[None], "query")
        return arr[0] / norms[0]

    def similarities(self, query: Any) -> np.ndarray:
        """(N,) exact cosine similarity of ``query`` to every place, in id order."""
        q = self._check_query(query)
        return self._store.dot(q, self._n)

    def _eligibility(
        self, exclude_last_n: int, exclude_after_stamp: float | None
    ) -> tuple[int, np.ndarray | None]:
        """(cutoff, mask): eligible ids are < cutoff and, if mask is given, mask[id]."""
        cutoff = self._n - max(0, int(exclude_last_n))
        mask = None
        if exclude_after_stamp is not None:
            if self._monotone:
                st = self._stamps[: self._n]
                cutoff = min(cutoff, int(np.searchsorted(st, exclude_after_stamp, side="right")))
            else:
                mask = self._stamps[: self._n] <= exclude_after_stamp
        return max(cutoff, 0), mask

    def _exact(self, q: np.ndarray, k: int, cutoff: int, mask: np.ndarray | None):
        scores = self._store.dot(q, cutoff)
        if mask is not None:
            scores = np.where(mask[:cutoff], scores, -np.inf)
        k = min(k, cutoff)
        top = np.argpartition(-scores, k - 1)[:k] if k < cutoff else np.arange(cutoff)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def search(
        self,
        query: Any,
        k: int = 5,
        exclude_last_n: int = 0,
        exclude_after_stamp: float | None = None,
        rescore: bool = True,
    ) -> list[tuple[int, float]]:
        """Best ``k`` (id, cosine) pairs, best first, skipping the newest ``exclude_last_n``
        places and those stamped after ``exclude_after_stamp`` (e.g. to find loop closures).

        ``rescore=False``: with a PQ index, its own ranking and approximate scores (no exact
        re-scoring pass) - for callers that compute exact similarities of the candidates anyway
        (the shortlist sequence matcher)."""
        q = self._check_query(query)
        if self._n == 0 or k <= 0:
            return []
        cutoff, mask = self._eligibility(exclude_last_n, exclude_after_stamp)
        eligible = cutoff if mask is None else int(mask[:cutoff].sum())
        if eligible == 0:
            return []
        k = min(int(k), eligible)
        # Exact numpy when the index is not usable yet or most of the map is excluded anyway.
        if not self._index_ready() or k + self._n - eligible > self._n // 2:
            return self._exact(q, k, cutoff, mask)
        indexed = int(self.index.ntotal)
        pending = np.arange(indexed, min(self._n, cutoff))  # not in the index yet: exact
        if mask is not None:
            pending = pending[mask[pending]]
        excluded = indexed - (eligible - len(pending))  # indexed places the caller excludes
        # PQ: fetch extra candidates for the exact re-scoring (enough for the first 5 ranks).
        refine = _PQ_REFINE * min(k, 5) if self.index_type in PQ_TYPES and rescore else 0
        fetch = k + excluded + refine
        while True:
            fetch = min(fetch, indexed)
            scores, ids = self._faiss_search(q, fetch)
            exhausted = fetch >= indexed or bool((ids < 0).any())
            keep = (ids >= 0) & (ids < cutoff)
            if mask is not None:
                keep &= mask[np.clip(ids, 0, self._n - 1)]
            scores, ids = scores[keep], ids[keep]
            if len(ids) >= k + refine or exhausted:
                break
            fetch *= 2
        if len(pending):
            ids = np.concatenate((ids, pending))
            block = self._pending_rows(indexed, int(pending[-1]) + 1)
            scores = np.concatenate((scores, block[pending - indexed] @ q))
            order = np.argsort(-scores, kind="stable")
            ids, scores = ids[order], scores[order]
        if len(ids) < k:  # the graph/IVF probes missed eligible places: stay correct
            return self._exact(q, k, cutoff, mask)
        if self.index_type in PQ_TYPES and rescore:  # PQ scores are approximate: re-score
            exact = self._store.rows(ids) @ q
            order = np.argsort(-exact, kind="stable")[:k]
            return [(int(ids[i]), float(exact[i])) for i in order]
        return [(int(i), float(s)) for i, s in zip(ids[:k], scores[:k], strict=True)]

    def _faiss_search(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index_type in ("hnsw", "hnswpq"):
            self.index.hnsw.efSearch = max(self.hnsw_ef_search, fetch)
        elif self.index_type == "ivfpq":
            self.index.nprobe = self.ivf_nprobe
            self.index.parallel_mode = 1  # one query: its lists scanned by all threads
        if self.index_type == "ivfpq":
            scores, ids = self.index.search(q[None], fetch)
        else:
            # One query is scanned by one thread anyway (fast-scan, flat and HNSW parallelise
            # over queries), and 2 OpenMP threads woken right after the sequence matcher's BLAS
            # calls contended with OpenBLAS's workers: a 1M-place PCA-PQ search right after a
            # GEMV took p95 13.0 ms with 2 threads, 6.3 ms with 1 (p50 5.9 both; measured).
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)  # per calling thread (an OpenMP ICV)
            try:
                scores, ids = self.index.search(q[None], fetch)
            finally:
                faiss.omp_set_num_threads(threads)
        if self.index_type == "pcapq":  # squared L2 of projected unit vectors: ~ 2 - 2 cos
            return 1.0 - 0.5 * scores[0], ids[0]
        return scores[0], ids[0]

    # ----------------------------------------------------------------- persistence
    def _meta(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model_id": self.model_id,
            "dim": self.dim,
            "index_type": self.index_type,
            "index_choice": {"requested": self.index_request, "reason": self.index_choice_reason()},
            "descriptor_storage": self._store.storage,
            "frame_id": self.frame_id,
            "count": self._n,
            "index_params": {
                "hnsw_m": self.hnsw_m,
                "hnsw_ef_search": self.hnsw_ef_search,
                "hnsw_ef_construction": self.hnsw_ef_construction,
                "ivf_nlist": self.ivf_nlist,
                "pq_m": self.pq_m,
                "ivf_nprobe": self.ivf_nprobe,
                "pca_dim": self.pca_dim,
            },
            "tags": {str(k): str(v) for k, v in self.tags.items()},
            "created": float(self.created),
            "updated": time.time(),
        }

    def _write_sqlite(self, path: Path, meta: dict[str, Any]) -> None:
        con = sqlite3.connect(path)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute(
                "CREATE TABLE places (id INTEGER PRIMARY KEY, stamp REAL, has_pose INT, "
                "x REAL, y REAL, z REAL, qx REAL, qy REAL, qz REAL, qw REAL, description TEXT, "
                "session INTEGER NOT NULL DEFAULT 0, frame_id TEXT NOT NULL DEFAULT '')"
            )
            con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            n = self._n
            poses = np.where(self._has_pose[:n, None], self._poses[:n], np.nan)
            rows = (
                (
                    i,
                    float(self._stamps[i]),
                    int(self._has_pose[i]),
                    *map(_sql_float, poses[i]),
                    self._text[i],
                    int(self._session[i]),
                    self._frames[i],
                )
                for i in range(n)
            )
            con.executemany("INSERT INTO places VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            flat = {k: v for k, v in meta.items() if not isinstance(v, dict)}
            flat.update({f"tag.{k}": v for k, v in meta["tags"].items()})
            con.executemany(
                "INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in flat.items()]
            )
            con.commit()
        finally:
            con.close()

    def save(self, path: str | Path) -> Path:
        """Write the map directory atomically: a crash leaves either the old or the new map."""
        final = Path(path).resolve()
        _check_save_target(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        _recover(final)
        tmp = final.with_name(final.name + SAVING_SUFFIX)
        aside = final.with_name(final.name + ASIDE_SUFFIX)
        if tmp.exists() and not _is_own_leftover(tmp):
            raise MapTargetError(
                f"cannot save to {final}: {tmp} exists and is not a lavpr map's temporary copy; "
                "move it away first"
            )
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        meta = self._meta()
        self._flush_index()
        faiss.write_index(self.index, str(tmp / "index.faiss"))
        self._store.save(tmp / "descriptors.npy")
        self._write_sqlite(tmp / "places.sqlite", meta)
        names = list(FILES)
        if len(self.features):
            self.features.save(tmp / FEATURES_FILE)
            names.append(FEATURES_FILE)
        meta["sha256"] = {}
        for name in names:
            _fsync_file(tmp / name)
            meta["sha256"][name] = sha256_file(tmp / name)
        # The manifest goes last (renamed into place): its presence marks a complete directory.
        part = tmp / (MANIFEST + ".part")
        with open(part, "w", encoding="utf-8") as fh:
            yaml.safe_dump(meta, fh, sort_keys=False, allow_unicode=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(part, tmp / MANIFEST)
        _fsync_dir(tmp)
        if final.exists():
            os.rename(final, aside)
            _fsync_dir(final.parent)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        shutil.rmtree(aside, ignore_errors=True)
        return final

    @classmethod
    def load(
        cls,
        path: str | Path,
        expected_model_id: str | None = None,
        expected_dim: int | None = None,
    ) -> PlaceMap:
        """Read a saved map, checking files, checksums, counts and the model it was built with."""
        final = Path(path).resolve()
        src = _complete_copy(final)
        if src is None:
            if final.is_file():
                raise MapFormatError(f"{final} is a file, not a place map directory")
            if final.is_dir():
                raise MapFormatError(f"{final} is not a place map: {MANIFEST} missing")
            raise FileNotFoundError(f"no place map at {final}")
        meta = _read_manifest(src)
        model_id, dim = meta["model_id"], meta["dim"]
        if expected_model_id is not None and model_id != expected_model_id:
            raise MapMismatchError(
                f"map {final} was built with model '{model_id}' (dim {dim}) but the current "
                f"encoder is '{expected_model_id}'"
                + (f" (dim {expected_dim})" if expected_dim is not None else "")
                + "; rebuild the map with this encoder or switch encoders"
            )
        if expected_dim is not None and dim != int(expected_dim):
            raise MapMismatchError(
                f"map {final} was built with model '{model_id}' of dim {dim} but the current "
                f"encoder '{expected_model_id or '?'}' produces dim {expected_dim}"
            )
        sums = meta.get("sha256")
        if not isinstance(sums, dict):
            raise MapFormatError(f"{src / MANIFEST}: missing 'sha256' table")
        for name in FILES:
            f = src / name
            if not f.is_file():
                raise MapFormatError(f"map file missing: {f}")
            if sha256_file(f) != sums.get(name):
                raise MapFormatError(f"map file {f} is corrupt: sha256 differs from {MANIFEST}")
        params = dict(meta.get("index_params") or {})
        choice = meta.get("index_choice") or {}  # absent in maps saved before auto existed
        request = choice.get("requested", meta["index_type"]) if isinstance(choice, dict) else None
        try:
            m = cls(dim, model_id, meta["index_type"], str(meta.get("frame_id") or "map"), **params)
            if request not in INDEX_REQUESTS:
                raise ValueError(f"index_choice.requested {request!r}")
        except (TypeError, ValueError) as exc:
            raise MapFormatError(f"{src / MANIFEST}: bad index settings: {exc}") from exc
        count = meta["count"]
        store = _load_descriptors(src / "descriptors.npy", count, dim)
        stamps, poses, has_pose, texts, sessions, frames = _read_places(
            src / "places.sqlite", count, m.frame_id
        )
        try:
            index = faiss.read_index(str(src / "index.faiss"))
        except RuntimeError as exc:
            raise MapFormatError(f"cannot read faiss index {src / 'index.faiss'}: {exc}") from exc
        if index.d != dim:
            raise MapFormatError(f"{src / 'index.faiss'}: index dim {index.d} != map dim {dim}")
        _check_index_kind(index, m, src / "index.faiss")
        expected_total = 0 if m.index_type in PQ_TYPES and not index.is_trained else count
        if index.ntotal != expected_total:
            raise MapFormatError(
                f"{src / 'index.faiss'}: index holds {index.ntotal} vectors, map has {count} places"
            )
        m._n = count
        m._store, m._stamps, m._poses, m._has_pose = store, stamps, poses, has_pose
        m.index_request = str(request)
        m.index_reason = str(choice.get("reason", "")) if isinstance(choice, dict) else ""
        m._session = sessions
        m._text = texts
        m._frames = frames
        m._monotone = bool((np.diff(stamps) >= 0).all())
        m.index = index
        if m.index_type == "pcapq":
            set_search_defaults(index)
        m.tags = {str(k): str(v) for k, v in (meta.get("tags") or {}).items()}
        m.created = float(meta.get("created", time.time()))
        if m.index_type in PQ_TYPES and not index.is_trained:
            m._index_add()  # settings may allow training now
        if FEATURES_FILE in sums:
            f = src / FEATURES_FILE
            if not f.is_file() or sha256_file(f) != sums[FEATURES_FILE]:
                raise MapFormatError(f"map file {f} is missing or corrupt (sha256)")
            try:
                m.features = FeatureStore.load(f, count)
            except FeatureStoreError as exc:
                raise MapFormatError(str(exc)) from exc
        m.begin_session()  # what is added from now on is a new mapping session
        # Only a map that loaded completely may repair what an interrupted save left behind; a
        # read-only location is read as it is (load_notes says so).
        m.load_notes = []
        try:
            _recover(final)
        except OSError as exc:
            m.load_notes.append(
                f"crash leftovers next to {final} not repaired ({exc.strerror or exc}); "
                f"the map was read from {src.name} as it is"
            )
        return m

    def __repr__(self) -> str:
        return (
            f"PlaceMap({len(self)} places, dim={self.dim}, model={self.model_id!r}, "
            f"index={self.index_type})"
        )


def _check_frame(frame_id: Any) -> str:
    """A frame id to store: a non-empty string without spaces or control characters."""
    if not isinstance(frame_id, str) or not frame_id.strip():
        raise ValueError(f"frame_id must be a non-empty string, got {frame_id!r}")
    if any(c.isspace() or not c.isprintable() for c in frame_id) or len(frame_id) > 256:
        raise ValueError(f"frame_id {frame_id[:40]!r} is not a valid frame name")
    return frame_id


def _sql_float(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse directory fsync
        _fsync_file(path)


def _is_map_dir(path: Path) -> bool:
    """A directory whose manifest is a lavpr place-map manifest (possibly of a damaged map)."""
    man = path / MANIFEST
    if path.is_symlink() or not path.is_dir() or not man.is_file():
        return False
    try:
        meta = yaml.safe_load(man.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and "format_version" in meta and "model_id" in meta


def _is_own_leftover(path: Path) -> bool:
    """A sibling folder that only an interrupted save of this map can have left: a real
    directory holding nothing but map files."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        entries = list(path.iterdir())
    except OSError:
        return False
    return all(e.name in OWN_NAMES and e.is_file() and not e.is_symlink() for e in entries)


def _check_save_target(final: Path) -> None:
    """Overwrite only a lavpr map or an empty directory; never a file or foreign data."""
    if final.is_symlink() and not final.exists():
        raise MapTargetError(f"cannot save to {final}: it is a dangling symbolic link")
    if final.exists() and not final.is_dir():
        raise MapTargetError(
            f"cannot save to {final}: it is a file, not a map directory (choose another path)"
        )
    if final.is_dir() and any(final.iterdir()) and not _is_map_dir(final):
        raise MapTargetError(
            f"cannot save to {final}: the directory is not empty and is not a lavpr map "
            f"(no place-map {MANIFEST}); refusing to replace its contents"
        )


def _complete_copy(final: Path) -> Path | None:
    """Where the complete map is, without changing anything on disk: the map itself, else the
    previous map moved aside by an interrupted save, else a save's finished temp copy."""
    tmp = final.with_name(final.name + SAVING_SUFFIX)
    aside = final.with_name(final.name + ASIDE_SUFFIX)
    if final.is_dir():
        return final if (final / MANIFEST).is_file() else None
    if final.exists():
        return None
    if _is_map_dir(aside) and _is_own_leftover(aside):
        return aside
    if _is_map_dir(tmp) and _is_own_leftover(tmp):
        return tmp
    return None


def _recover(final: Path) -> Path | None:
    """Repair what an interrupted save left behind; returns the directory holding the map.

    Saves write ``<name>.saving`` completely (manifest last), rename ``<name>`` to ``<name>.old``,
    rename ``.saving`` to ``<name>`` and delete ``.old``. So ``<name>`` is always complete when
    present; without it, ``.old`` is the complete previous map; a lone ``.saving`` is complete
    only if its manifest was written. Sibling folders are touched only when they hold nothing
    but map files (recognisably this map's leftovers). Raises OSError where the location is
    read-only.
    """
    tmp = final.with_name(final.name + SAVING_SUFFIX)
    aside = final.with_name(final.name + ASIDE_SUFFIX)
    if final.is_dir():
        if not _is_map_dir(final):
            return None
        for leftover in (tmp, aside):
            if _is_own_leftover(leftover):
                shutil.rmtree(leftover)
        return final
    if final.exists():
        return None
    if _is_map_dir(aside) and _is_own_leftover(aside):
        os.rename(aside, final)
    elif _is_map_dir(tmp) and _is_own_leftover(tmp):
        os.rename(tmp, final)
    else:
        if _is_own_leftover(tmp):
            shutil.rmtree(tmp)
        return None
    _fsync_dir(final.parent)
    if _is_own_leftover(tmp):
        shutil.rmtree(tmp)
    return final


def _check_index_kind(index: Any, m: PlaceMap, path: Path) -> None:
    """The manifest's index_type and parameters must describe the index file actually stored."""
    kinds = {
        "flat": faiss.IndexFlat,
        "hnsw": faiss.IndexHNSWFlat,
        "ivfpq": faiss.IndexIVFPQ,
        "hnswpq": faiss.IndexHNSWPQ,
        "pcapq": faiss.IndexPreTransform,
    }
    actual = type(index).__name__
    if not isinstance(index, kinds[m.index_type]):
        raise MapFormatError(
            f"{path}: the manifest says index_type '{m.index_type}' but the file holds a {actual}"
        )
    if m.index_type == "pcapq":
        problem = check_pca_pq(index, m.dim, m.pca_dim)
        if problem:
            raise MapFormatError(f"{path}: {problem}")
        return
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise MapFormatError(f"{path}: the index does not use inner-product (cosine) search")
    if m.index_type in ("hnsw", "hnswpq") and index.hnsw.nb_neighbors(0) != 2 * m.hnsw_m:
        raise MapFormatError(
            f"{path}: manifest hnsw_m {m.hnsw_m} does not match the stored HNSW graph "
            f"(M = {index.hnsw.nb_neighbors(0) // 2})"
        )
    if m.index_type == "hnswpq" and m.pq_m != faiss.downcast_index(index.storage).pq.M:
        raise MapFormatError(f"{path}: manifest pq_m {m.pq_m} does not match the stored index")
    if m.index_type == "ivfpq" and (index.nlist != m.ivf_nlist or m.pq_m != index.pq.M):
        raise MapFormatError(
            f"{path}: manifest ivf_nlist/pq_m {m.ivf_nlist}/{m.pq_m} do not match the stored "
            f"index ({index.nlist}/{index.pq.M})"
        )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A saved map's manifest (format checked) without reading its data files - its place count,
    model and index, e.g. before a node loads the map itself."""
    return _read_manifest(Path(path))


def _read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.is_file():
        raise MapFormatError(f"map manifest missing: {path}")
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MapFormatError(f"map manifest {path} is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise MapFormatError(f"map manifest {path} is not a mapping")
    if meta.get("format_version") != FORMAT_VERSION:
        raise MapFormatError(
            f"{path}: format_version {meta.get('format_version')!r} (supported: {FORMAT_VERSION})"
        )
    for key, typ in (("model_id", str), ("dim", int), ("index_type", str), ("count", int)):
        if not isinstance(meta.get(key), typ) or isinstance(meta.get(key), bool):
            raise MapFormatError(f"{path}: key '{key}' missing or not a {typ.__name__}")
    if meta["count"] < 0 or meta["dim"] <= 0:
        raise MapFormatError(f"{path}: bad count/dim {meta['count']}/{meta['dim']}")
    return meta


def _load_descriptors(path: Path, count: int, dim: int) -> DescriptorStore:
    """float32 (every map so far) or float16 rows; large files stay on disk, read per row run."""
    try:
        return DescriptorStore.load(path, count, dim)
    except (ValueError, OSError, EOFError) as exc:
        raise MapFormatError(f"cannot read descriptors {path}: {exc}") from exc


def _read_places(path: Path, count: int, map_frame: str):
    try:
        # Quote the path: '#', '?' and '%' are legal in file names but special in a URI.
        con = sqlite3.connect(f"file:{pathname2url(str(path))}?mode=ro", uri=True)
        try:
            cols = {r[1] for r in con.execute("PRAGMA table_info(places)")}
            session = "session" if "session" in cols else "0"  # maps saved before sessions
            # Maps saved before places had frames: every place is in the map-level frame_id.
            frame = "frame_id" if "frame_id" in cols else "''"
            rows = con.execute(
                "SELECT id, stamp, has_pose, x, y, z, qx, qy, qz, qw, description, "
                f"{session}, {frame} FROM places ORDER BY id"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise MapFormatError(f"cannot read place metadata {path}: {exc}") from exc
    if len(rows) != count or any(r[0] != i for i, r in enumerate(rows)):
        raise MapFormatError(
            f"{path}: holds {len(rows)} places with ids not 0..{count - 1}; manifest says {count}"
        )
    stamps = np.array([r[1] for r in rows], dtype=np.float64)
    has_pose = np.array([bool(r[2]) for r in rows], dtype=bool)
    poses = np.full((count, 7), np.nan, dtype=np.float64)
    for i, r in enumerate(rows):
        if r[2]:
            poses[i] = [np.nan if v is None else v for v in r[3:10]]
    texts = [r[10] or "" for r in rows]
    try:
        sessions = np.array([int(r[11]) for r in rows], dtype=np.int32)
    except (TypeError, ValueError) as exc:
        raise MapFormatError(f"{path}: bad session column: {exc}") from exc
    try:
        frames = [_check_frame(r[12] or map_frame) for r in rows]
    except ValueError as exc:
        raise MapFormatError(f"{path}: bad frame_id column: {exc}") from exc
    return stamps, poses, has_pose, texts, sessions, frames
