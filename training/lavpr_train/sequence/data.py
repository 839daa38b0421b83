"""Nordland single-frame descriptors (the runtime's PatchNormEncoder, cached) and sequence windows.

Route segments used for SeqNet (stated in the README): train frames 0-2399, test frames 2500-3575
(100 frames = ~2 km of track between them, so no training window overlaps a test window).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

TRAIN_RANGE = (0, 2400)
TEST_RANGE = (2500, 3576)
DEFAULT_CACHE = "/tmp/lavpr_nordland_patchnorm_64x32_p8.npz"


def nordland_descriptors(
    cache: str | Path | None = DEFAULT_CACHE, batch: int = 64, quiet: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(summer, winter) descriptors, (3576, 2048) float32 each, L2-normalised (frame-aligned)."""
    if cache and Path(cache).is_file():
        with np.load(cache) as z:
            return z["summer"], z["winter"]
    from PIL import Image

    from lavpr_ros.core.datasets import nordland
    from lavpr_ros.core.patchnorm import PatchNormEncoder

    ds = nordland()
    enc = PatchNormEncoder()
    out = []
    t0 = time.perf_counter()
    for paths in (ds.ref_paths, ds.query_paths):
        rows = []
        for s in range(0, len(paths), batch):
            imgs = [np.asarray(Image.open(p).convert("RGB")) for p in paths[s : s + batch]]
            rows.append(enc.encode(imgs))
        out.append(np.concatenate(rows))
    if not quiet:
        print(
            f"patchnorm descriptors of {len(ds.ref_paths)} x 2 frames: "
            f"{time.perf_counter() - t0:.1f} s"
        )
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cache) + ".tmp.npz")
        np.savez(tmp, summer=out[0], winter=out[1])
        tmp.replace(cache)
    return out[0], out[1]


def windows(desc: np.ndarray, length: int) -> np.ndarray:
    """(N - length + 1, length, D) windows ending at frames length-1 .. N-1 (a view, no copy)."""
    if len(desc) < length:
        raise ValueError(f"{len(desc)} frames < sequence length {length}")
    return np.lib.stride_tricks.sliding_window_view(desc, length, axis=0).transpose(0, 2, 1)
