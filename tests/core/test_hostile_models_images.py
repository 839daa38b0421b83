"""Issue #15 items 10, 12, 18: image pixel limits before decoding, model files confined to
their manifest's folder, and model paths that say where they were looked for."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from lavpr_ros.core.encoders import create_encoder
from lavpr_ros.core.images import (
    DEFAULT_MAX_PIXELS,
    ImageFormatError,
    image_from_compressed,
    image_from_raw,
)
from lavpr_ros.core.manifest import (
    ManifestError,
    ModelNotFoundError,
    load_manifest,
    resolve_model_path,
    verify_checksum,
)

REPO = Path(__file__).resolve().parents[2]


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG that declares width x height grey pixels (all zero, compresses to nothing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    raw = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()  # truncated on purpose
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_item10_pixel_limit_checked_from_the_header() -> None:
    """Before: a 164 KB PNG that decodes to 13000x13000 cost the encoder 1.4-1.7 GB."""
    bomb = _png_bomb(13000, 13000)
    assert len(bomb) < 200_000
    with pytest.raises(ImageFormatError, match="above the limit of 40000000 pixels"):
        image_from_compressed(bomb, "png", max_pixels=DEFAULT_MAX_PIXELS)
    with pytest.raises(ImageFormatError, match="max_image_pixels"):
        image_from_raw(b"\0" * 12, 2000, 3000, "mono8", 3000, max_pixels=1_000_000)
    # A normal camera frame passes.
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(buf, format="PNG")
    assert image_from_compressed(buf.getvalue(), "png", DEFAULT_MAX_PIXELS).shape == (480, 640, 3)


def _model_dir(root: Path, name: str = "m") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(b"model bytes")
    raw = {
        "format_version": 1,
        "model_id": "tiny",
        "kind": "image",
        "file": "model.onnx",
        "sha256": hashlib.sha256(b"model bytes").hexdigest(),
        "output_dim": 8,
        "input_size": [32, 48],
    }
    (d / "manifest.yaml").write_text(yaml.safe_dump(raw))
    return d


def _set_file(d: Path, file: str, content: bytes) -> None:
    raw = yaml.safe_load((d / "manifest.yaml").read_text())
    raw["file"], raw["sha256"] = file, hashlib.sha256(content).hexdigest()
    (d / "manifest.yaml").write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize("how", ["dotdot", "symlink", "deep-dotdot"])
def test_item12_model_file_must_stay_in_its_folder(tmp_path: Path, how: str) -> None:
    """Before: file '../elsewhere/model.onnx', a symlink out of the folder, or
    '../../../../etc/hostname' was opened and run as a model."""
    d = _model_dir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "model.onnx").write_bytes(b"evil")
    if how == "dotdot":
        _set_file(d, "../elsewhere/model.onnx", b"evil")
    elif how == "symlink":
        (d / "link.onnx").symlink_to(tmp_path / "elsewhere" / "model.onnx")
        _set_file(d, "link.onnx", b"evil")
    else:
        _set_file(d, "../../../../../../../../etc/hostname", b"whatever")
    man = load_manifest(d)
    with pytest.raises(ManifestError, match="outside the manifest's folder"):
        verify_checksum(man)


def test_item12_symlink_inside_the_folder_is_fine(tmp_path: Path) -> None:
    d = _model_dir(tmp_path)
    (d / "weights").mkdir()
    shutil.move(d / "model.onnx", d / "weights" / "model.onnx")
    (d / "model.onnx").symlink_to(d / "weights" / "model.onnx")
    assert verify_checksum(load_manifest(d)) == (d / "weights" / "model.onnx").resolve()


def test_item18_not_found_names_abs_path_cwd_and_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a bad model path ended in 'unknown encoder spec' and a second traceback."""
    models = tmp_path / "models"
    _model_dir(models, "good-model")
    monkeypatch.setenv("LAVPR_MODELS_DIR", str(models))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as exc:
        create_encoder("models/typo-model")
    msg = str(exc.value)
    assert f"model not found: {tmp_path / 'models' / 'typo-model'}" in msg
    assert f"(cwd {tmp_path})" in msg and str(models / "good-model") in msg


def test_item18_relative_paths_resolve_in_the_models_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "shared_models"
    d = _model_dir(models, "good-model")
    monkeypatch.setenv("LAVPR_MODELS_DIR", str(models))
    monkeypatch.chdir(tmp_path / "shared_models" / "good-model")  # any cwd
    os.chdir("/")
    assert resolve_model_path("good-model") == d.resolve()
    assert resolve_model_path("models/good-model") == d.resolve()  # as in the repo layout
    assert load_manifest("good-model").model_id == "tiny"


def test_item18_repository_models_found_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (REPO / "models" / "minilm-l6-v2" / "manifest.yaml").is_file():
        pytest.skip("default models not built (make models)")
    monkeypatch.delenv("LAVPR_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("minilm-l6-v2") == (REPO / "models" / "minilm-l6-v2").resolve()
