"""The manifest's resize filter (``interpolation``): bilinear by default (older manifests),
bicubic for models evaluated that way (BoQ), anything else refused by name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lavpr_ros.core.encoders import preprocess
from lavpr_ros.core.manifest import ManifestError, load_manifest


def _manifest(tmp_path: Path, **over):
    (tmp_path / "model.onnx").write_bytes(b"m")
    raw = {
        "model_id": "t",
        "kind": "image",
        "file": "model.onnx",
        "sha256": hashlib.sha256(b"m").hexdigest(),
        "output_dim": 4,
        "input_size": [20, 30],
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        **over,
    }
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(raw))
    return load_manifest(tmp_path)


@pytest.mark.parametrize("interp", [None, "bilinear", "bicubic"])
def test_preprocess_uses_the_manifest_filter(tmp_path, interp):
    m = _manifest(tmp_path, **({"interpolation": interp} if interp else {}))
    img = np.random.default_rng(0).integers(0, 256, (47, 61, 3), dtype=np.uint8)
    filt = Image.Resampling.BICUBIC if interp == "bicubic" else Image.Resampling.BILINEAR
    want = np.asarray(Image.fromarray(img).resize((30, 20), filt), dtype=np.float32) / 255.0
    got = preprocess([img], m)[0].transpose(1, 2, 0)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert m.interpolation == (interp or "bilinear")


def test_unknown_filter_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="interpolation.*bilinear, bicubic"):
        _manifest(tmp_path, interpolation="lanczos")
