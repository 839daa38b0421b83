"""Model manifest: parsing, validation messages, save/load and checksum verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from lavpr_ros.core.manifest import (
    ManifestError,
    ModelChecksumError,
    ModelManifest,
    load_manifest,
    sha256_file,
    verify_checksum,
)


def _write(tmp_path: Path, **over) -> Path:
    (tmp_path / "model.onnx").write_bytes(b"model bytes")
    raw = {
        "format_version": 1,
        "model_id": "tiny",
        "kind": "image",
        "file": "model.onnx",
        "sha256": hashlib.sha256(b"model bytes").hexdigest(),
        "output_dim": 8,
        "input_size": [32, 48],
    }
    raw.update(over)
    raw = {k: v for k, v in raw.items() if v is not None}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_load_defaults_and_paths(tmp_path: Path) -> None:
    path = _write(tmp_path)
    for arg in (path, tmp_path, str(path)):
        m = load_manifest(arg)
        assert m.model_id == "tiny" and m.output_dim == 8
        assert m.input_size == (32, 48)
        assert m.color_order == "RGB" and m.input_layout == "NCHW" and m.normalize is True
        assert m.mean == pytest.approx((0.485, 0.456, 0.406))
        assert m.model_path == (tmp_path / "model.onnx").resolve()
        assert m.model_path.is_absolute()


def test_save_roundtrip(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, color_order="BGR", extra={"a": 1}, tokenizer=None))
    m.description = "d"
    out = tmp_path / "copy"
    saved = m.save(out)
    assert saved == out / "manifest.yaml"
    m2 = load_manifest(out)
    assert m2 == m
    assert m2.model_path == (out / "model.onnx").resolve()  # relative to the new directory
    assert "directory" not in yaml.safe_load(saved.read_text())


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"model_id": None}, "model_id"),
        ({"kind": "audio"}, "kind"),
        ({"output_dim": 0}, "output_dim"),
        ({"output_dim": "8"}, "output_dim"),
        ({"sha256": "abc"}, "sha256"),
        ({"input_size": [32]}, "input_size"),
        ({"input_size": None}, "input_size"),
        ({"color_order": "RGBA"}, "color_order"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"std": [0.2, 0.0, 0.2]}, "std"),
        ({"input_layout": "CHW"}, "input_layout"),
        ({"format_version": 2}, "format_version"),
        ({"normalize": "yes"}, "normalize"),
        ({"file": "/abs/model.onnx"}, "file"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_validation_names_key_and_file(tmp_path: Path, over: dict, key: str) -> None:
    path = _write(tmp_path, **over)
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    assert f"'{key}'" in str(exc.value) and str(path) in str(exc.value)


def test_text_model_needs_no_input_size(tmp_path: Path) -> None:
    m = load_manifest(
        _write(tmp_path, kind="text", input_size=None, tokenizer="tok.json", max_length=64)
    )
    assert m.input_size is None and m.max_length == 64
    assert m.tokenizer_path == (tmp_path / "tok.json").resolve()


def test_missing_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.yaml"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.yaml").write_text("model_id: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.yaml").write_text("- a list\n")
    with pytest.raises(ManifestError, match="mapping"):
        load_manifest(tmp_path)


def test_sha256_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_verify_checksum(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path))
    assert verify_checksum(m) == m.model_path
    (tmp_path / "model.onnx").write_bytes(b"other bytes")
    with pytest.raises(ModelChecksumError) as exc:
        verify_checksum(m)
    msg = str(exc.value)
    assert m.sha256 in msg and sha256_file(tmp_path / "model.onnx") in msg
    assert str(m.model_path) in msg
    assert isinstance(exc.value, ManifestError)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        verify_checksum(m)


def test_dataclass_construction_directly(tmp_path: Path) -> None:
    m = ModelManifest(
        model_id="x", kind="image", file="m.onnx", sha256="0" * 64, output_dim=4,
        input_size=(8, 8), directory=tmp_path,
    )  # fmt: skip
    m.save(tmp_path)
    assert load_manifest(tmp_path) == m
