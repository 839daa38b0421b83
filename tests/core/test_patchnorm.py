"""PatchNormEncoder: shape, normalisation, flat-image safety and invariance to lighting."""

from __future__ import annotations

import numpy as np
import pytest

from lavpr_ros.core.patchnorm import PatchNormEncoder, patch_normalise


def _rand_image(seed: int, h: int = 48, w: int = 96) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_interface_and_unit_norm() -> None:
    enc = PatchNormEncoder()
    assert enc.model_id == "patchnorm-64x32-p8"
    assert enc.provider == "numpy"
    assert enc.dim == 64 * 32
    out = enc.encode([_rand_image(0), _rand_image(1, 120, 160)])
    assert out.shape == (2, enc.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert enc.encode([]).shape == (0, enc.dim)


def test_each_patch_zero_mean_unit_variance() -> None:
    grey = np.random.default_rng(2).uniform(0, 255, (16, 32)).astype(np.float32)
    out = patch_normalise(grey, 8).reshape(2, 8, 4, 8)
    np.testing.assert_allclose(out.mean(axis=(1, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 3)), 1.0, rtol=1e-4)


def test_patch_normalise_matches_loop_reference() -> None:
    grey = np.random.default_rng(3).uniform(0, 255, (8, 12)).astype(np.float32)
    grey[:4, :4] = 7.0  # a flat patch -> zeros
    ref = np.zeros_like(grey)
    for r in range(0, 8, 4):
        for c in range(0, 12, 4):
            blk = grey[r : r + 4, c : c + 4]
            sd = blk.std()
            ref[r : r + 4, c : c + 4] = (blk - blk.mean()) / sd if sd > 1e-3 else 0.0
    np.testing.assert_allclose(patch_normalise(grey, 4), ref, rtol=1e-4, atol=1e-5)


def test_constant_image_is_finite_and_orthogonal_to_textured() -> None:
    enc = PatchNormEncoder()
    flat = np.full((32, 64, 3), 128, dtype=np.uint8)
    out = enc.encode([flat, _rand_image(4)])
    assert np.isfinite(out).all()
    assert np.linalg.norm(out[0]) == pytest.approx(1.0, rel=1e-5)
    assert abs(float(out[0] @ out[1])) < 1e-5


def test_invariant_to_brightness_and_contrast() -> None:
    enc = PatchNormEncoder()
    img = _rand_image(5, 32, 64).astype(np.float32) * 0.5 + 40
    brighter = np.clip(img * 1.5 + 20, 0, 255).astype(np.uint8)
    a, b = enc.encode([img.astype(np.uint8), brighter])
    assert float(a @ b) > 0.99
    other = enc.encode([_rand_image(6, 32, 64)])[0]
    assert float(a @ other) < 0.2


def test_bad_sizes_rejected() -> None:
    with pytest.raises(ValueError):
        PatchNormEncoder(64, 30, 8)
    with pytest.raises(ValueError):
        PatchNormEncoder(0, 32, 8)
    with pytest.raises(ValueError):
        PatchNormEncoder().encode([np.zeros((4, 4, 5), dtype=np.uint8)])


def test_create_encoder_spec_maps_here() -> None:
    from lavpr_ros.core.encoders import create_encoder

    enc = create_encoder("patchnorm")
    assert isinstance(enc, PatchNormEncoder)
    assert create_encoder("patchnorm:32x16:4").model_id == "patchnorm-32x16-p4"
