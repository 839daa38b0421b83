"""Local features of the map's places, saved inside the map directory (``features.npz``).

Written into the save's temporary directory with the other map files, so it is swapped in
atomically with them and covered by the manifest's sha256 table; read back with numpy's loader
with ``allow_pickle=False`` (no pickle anywhere a file from outside can reach). Maps saved before
features existed load with an empty store: their places are simply "not verifiable".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .local_features import FEATURE_TYPES, Features

FILE = "features.npz"
KEYS = ("kind", "ids", "counts", "sizes", "xy", "desc", "depth")


class FeatureStoreError(ValueError):
    """A features file that is unreadable or inconsistent (names the file)."""


class FeatureStore:
    """Features by place id (all of one feature type)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Features] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, place_id: int) -> bool:
        return int(place_id) in self._by_id

    def get(self, place_id: int) -> Features | None:
        return self._by_id.get(int(place_id))

    def put(self, place_id: int, features: Features) -> None:
        kinds = {f.kind for f in self._by_id.values()}
        if kinds and features.kind not in kinds:
            raise ValueError(f"the store holds {kinds.pop()} features, not {features.kind}")
        self._by_id[int(place_id)] = features

    def bytes_per_place(self) -> float:
        if not self._by_id:
            return 0.0
        total = sum(f.xy.nbytes + f.desc.nbytes + f.depth.nbytes for f in self._by_id.values())
        return total / len(self._by_id)

    def save(self, path: Path) -> None:
        ids = sorted(self._by_id)
        feats = [self._by_id[i] for i in ids]
        kind = feats[0].kind if feats else "sift"
        width = feats[0].desc.shape[1] if feats else 128
        counts = np.array([len(f) for f in feats], dtype=np.int64)
        sizes = np.array([f.size for f in feats], dtype=np.int64).reshape(-1, 2)
        xy = np.concatenate([f.xy for f in feats]) if feats else np.zeros((0, 2), np.float32)
        desc = np.concatenate([f.desc for f in feats]) if feats else np.zeros((0, width), np.uint8)
        depth = (
            np.concatenate(
                [
                    f.depth if len(f.depth) == len(f) else np.full(len(f), np.nan, np.float32)
                    for f in feats
                ]
            )
            if feats
            else np.zeros(0, np.float32)
        )
        with open(path, "wb") as fh:
            np.savez(
                fh,
                kind=np.array(kind),
                ids=np.array(ids, dtype=np.int64),
                counts=counts,
                sizes=sizes,
                xy=xy.astype(np.float32),
                desc=desc.astype(np.uint8),
                depth=depth.astype(np.float32),
            )

    @classmethod
    def load(cls, path: Path, num_places: int) -> FeatureStore:
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {
                    k: z[k] for k in ("kind", "ids", "counts", "sizes", "xy", "desc", "depth")
                }
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise FeatureStoreError(f"cannot read local features {path}: {exc}") from exc
        kind = str(arrays["kind"])
        ids, counts = arrays["ids"], arrays["counts"]
        xy, desc, depth, sizes = arrays["xy"], arrays["desc"], arrays["depth"], arrays["sizes"]
        total = int(counts.sum()) if len(counts) else 0
        if (
            kind not in FEATURE_TYPES
            or len(ids) != len(counts)
            or sizes.shape != (len(ids), 2)
            or xy.shape != (total, 2)
            or len(desc) != total
            or len(depth) != total
            or (len(ids) and (ids.min() < 0 or ids.max() >= num_places))
            or len(set(ids.tolist())) != len(ids)
            or (counts < 0).any()
        ):
            raise FeatureStoreError(f"{path}: inconsistent local features for {num_places} places")
        store = cls()
        start = 0
        for pid, n, size in zip(ids.tolist(), counts.tolist(), sizes.tolist(), strict=True):
            store._by_id[pid] = Features(
                kind,
                xy[start : start + n].copy(),
                desc[start : start + n].copy(),
                (int(size[0]), int(size[1])),
                depth[start : start + n].copy(),
            )
            start += n
        return store
