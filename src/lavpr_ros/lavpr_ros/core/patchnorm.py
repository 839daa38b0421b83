"""Patch-normalised image descriptor: the SeqSLAM front end as an ``Encoder``.

Tiny greyscale thumbnails whose patches are normalised to zero mean / unit variance are robust to
the global illumination and seasonal appearance changes that defeat raw pixels, need no model
weights, and run in microseconds, which makes them the always-available baseline encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

# A patch whose pixels vary less than this (in 0..255 grey levels) is treated as flat: it is mapped
# to zeros rather than amplifying noise (and a constant image must never yield NaN).
_FLAT_STD = 1e-3


def patch_normalise(grey: np.ndarray, patch_size: int) -> np.ndarray:
    """Zero-mean, unit-variance normalisation of each non-overlapping ``patch_size`` square.

    ``grey`` is (H, W) or a batch (N, H, W) with H and W multiples of ``patch_size``. Vectorised:
    the image is viewed as a grid of patches, so there is no Python loop over patches.
    """
    arr = np.asarray(grey, dtype=np.float32)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    n, h, w = arr.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {w}x{h} is not a multiple of patch size {p}")
    blocks = arr.reshape(n, h // p, p, w // p, p)
    mean = blocks.mean(axis=(2, 4), keepdims=True)
    std = blocks.std(axis=(2, 4), keepdims=True)
    centred = blocks - mean
    out = np.where(std > _FLAT_STD, centred / np.maximum(std, _FLAT_STD), 0.0)
    out = out.reshape(n, h, w).astype(np.float32)
    return out[0] if single else out


class PatchNormEncoder:
    """Greyscale -> area downsample -> patch normalise -> flatten -> L2 normalise.

    Defaults (64x32, 8-pixel patches) were chosen on Nordland (summer map vs winter queries): they
    keep the native thumbnail resolution there, and 8-pixel patches gave the best single-frame and
    sequence recall among the sizes tried (see the evaluation notes in ``cli/eval_images.py``).
    """

    provider = "numpy"

    def __init__(self, width: int = 64, height: int = 32, patch_size: int = 8) -> None:
        if width <= 0 or height <= 0 or patch_size <= 0:
            raise ValueError("width, height and patch_size must be positive")
        if width % patch_size or height % patch_size:
            raise ValueError(f"{width}x{height} is not a multiple of patch size {patch_size}")
        self.width = width
        self.height = height
        self.patch_size = patch_size
        self.dim = width * height
        self.model_id = f"patchnorm-{width}x{height}-p{patch_size}"

    def _grey(self, image: np.ndarray) -> np.ndarray:
        """Greyscale thumbnail (H, W) float32; BOX (area) filter avoids aliasing on downsampling."""
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr)
        pil = pil.convert("L")
        if pil.size != (self.width, self.height):
            shrinking = pil.size[0] >= self.width and pil.size[1] >= self.height
            resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
            pil = pil.resize((self.width, self.height), resample=resample)
        return np.asarray(pil, dtype=np.float32)

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised.

        A featureless (constant) image has nothing to normalise; it gets the uniform unit vector,
        which is finite, non-zero (a place map accepts it) and has cosine exactly 0 to every
        textured descriptor, because each patch of those is zero-mean.
        """
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        grey = np.stack([self._grey(img) for img in images])
        flat = patch_normalise(grey, self.patch_size).reshape(len(images), -1)
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        uniform = np.float32(1.0 / np.sqrt(self.dim))
        out = np.where(norms > 0, flat / np.maximum(norms, 1e-12), uniform)
        return out.astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"PatchNormEncoder({self.width}, {self.height}, patch_size={self.patch_size})"
