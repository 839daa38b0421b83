"""A weighted fusion of global descriptors: ``fuse:0.5*patchnorm+0.5*models/mobilenetv2-...``.

Each part is L2-normalised, scaled by the square root of its weight and concatenated, so the
cosine of two fused descriptors is exactly the weighted sum of the parts' cosines (weights sum
to 1). Patch-normalised thumbnails are strong under appearance change on small frames (Nordland)
and weak on real-resolution indoor images; a CNN descriptor is the opposite — the sum keeps
what each is good at, with no training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PREFIX = "fuse:"


def parse_fuse_spec(spec: str) -> list[tuple[float, str]]:
    """'fuse:0.4*patchnorm+0.6*models/x' -> [(0.4, 'patchnorm'), (0.6, 'models/x')]; parts
    without a weight share what is left equally."""
    body = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    parts = [p.strip() for p in body.split("+") if p.strip()]
    if len(parts) < 2:
        raise ValueError(f"a fused encoder needs at least two parts, got {spec!r}")
    out: list[tuple[float | None, str]] = []
    for part in parts:
        weight, _, rest = part.partition("*")
        try:
            out.append((float(weight), rest.strip()) if rest else (None, part))
        except ValueError:
            out.append((None, part))
    given = sum(w for w, _ in out if w is not None)
    free = [i for i, (w, _) in enumerate(out) if w is None]
    share = (1.0 - given) / len(free) if free else 0.0
    weights = [(w if w is not None else share, s) for w, s in out]
    total = sum(w for w, _ in weights)
    if any(w <= 0 for w, _ in weights) or not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"fusion weights must be positive and sum to 1, got {spec!r}")
    return weights


class FusedEncoder:
    """The weighted concatenation of several encoders (see the module docstring)."""

    def __init__(self, spec: str, make: Callable[[str], Any]) -> None:
        self.parts = [(w, make(s)) for w, s in parse_fuse_spec(spec)]
        self.dim = sum(e.dim for _, e in self.parts)
        self.model_id = "fuse(" + ",".join(f"{w:g}*{e.model_id}" for w, e in self.parts) + ")"
        self.provider = "+".join(sorted({str(e.provider) for _, e in self.parts}))

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        cols = []
        for w, enc in self.parts:
            d = np.asarray(enc.encode(images), dtype=np.float32)
            d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
            cols.append(d * np.float32(math.sqrt(w)))
        return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)

    def __repr__(self) -> str:
        return f"FusedEncoder({self.model_id}, dim={self.dim})"
