import pytest

pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

from lavpr_train.export.manifest import read_manifest, sha256_file, write_manifest


def _fields(kind="image"):
    base = {
        "model_id": "x",
        "kind": kind,
        "file": "model.onnx",
        "output_dim": 8,
        "description": "d",
        "source": "s",
        "extra": {"a": (1, 2)},
    }
    if kind == "image":
        base |= {"input_size": (4, 4), "mean": [0.5] * 3, "std": [0.5] * 3}
    else:
        base |= {
            "input_name": "input_ids",
            "output_name": "embeddings",
            "tokenizer": "tokenizer.json",
            "max_length": 16,
        }
    return base


@pytest.mark.parametrize("kind", ["image", "text"])
def test_written_manifest_loads_in_runtime(tmp_path, kind):
    manifest = pytest.importorskip("lavpr_ros.core.manifest")
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    if kind == "text":
        (tmp_path / "tokenizer.json").write_text("{}")
    path = write_manifest(tmp_path, _fields(kind))
    raw = read_manifest(tmp_path)
    assert raw["format_version"] == 1 and raw["sha256"] == sha256_file(tmp_path / "model.onnx")
    m = manifest.load_manifest(path)
    assert m.model_id == "x" and m.kind == kind and m.output_dim == 8
    assert manifest.verify_checksum(m) == (tmp_path / "model.onnx").resolve()
    if kind == "text":
        assert m.tokenizer_path == (tmp_path / "tokenizer.json").resolve() and m.max_length == 16
    else:
        assert tuple(m.input_size) == (4, 4)


def test_unknown_keys_are_refused(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown manifest keys"):
        write_manifest(tmp_path, _fields() | {"colour": "RGB"})
