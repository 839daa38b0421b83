"""Runtime text encoder (onnxruntime + tokenizers, no torch) on the exported all-MiniLM-L6-v2.

Parity with transformers / stored reference embeddings is checked in tests/training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "minilm-l6-v2" / "manifest.yaml"


@pytest.fixture(scope="module")
def encoder(text_model):  # the conftest fixture: skips, or fails under `make test`, if absent
    from lavpr_ros.core.text_encoder import TextEncoder

    return TextEncoder(text_model)


def test_attributes(encoder):
    assert encoder.model_id == "minilm-l6-v2"
    assert encoder.dim == 384
    assert encoder.provider == "CPUExecutionProvider"


def test_shapes_dtype_and_unit_norm(encoder):
    out = encoder.encode(["a corridor", "the kitchen", "a bike shed"])
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_empty_list(encoder):
    out = encoder.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_similar_sentences_score_higher_than_unrelated(encoder):
    a, b, c, d = encoder.encode(
        [
            "a long hallway with office doors on both sides",
            "a corridor lined with doors to offices",
            "snow on a railway line through the forest",
            "the coffee machine in the kitchen",
        ]
    )
    assert a @ b > a @ c + 0.2
    assert a @ b > a @ d + 0.2
    assert b @ a > b @ c


def test_empty_and_very_long_texts(encoder):
    long_text = "the corridor continues past the lab. " * 2800  # ~100 kB
    assert len(long_text) > 100_000
    out = encoder.encode(["", long_text, "x" * 100_000])
    assert out.shape == (3, 384) and np.isfinite(out).all()
    # truncation: only the first max_length tokens count
    prefix = encoder.encode(["the corridor continues past the lab. " * 200])[0]
    assert out[1] @ prefix > 0.999


def test_batching_does_not_change_results(encoder):
    texts = [f"room number {i} on floor {i % 3}" for i in range(70)]
    together = encoder.encode(texts)
    one_by_one = np.concatenate([encoder.encode([t]) for t in texts[:5]])
    np.testing.assert_allclose(together[:5], one_by_one, atol=1e-5)


def test_rejects_non_text_input(encoder):
    with pytest.raises(TypeError):
        encoder.encode("not a list")
    with pytest.raises(TypeError):
        encoder.encode(["ok", 3])


def test_wrong_kind_manifest_is_refused(tmp_path, text_model):
    import yaml

    from lavpr_ros.core.text_encoder import TextEncoder

    raw = yaml.safe_load(MANIFEST.read_text())
    raw.update(kind="image", input_size=[224, 224])
    (tmp_path / "model.onnx").symlink_to(MANIFEST.parent / raw["file"])
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="kind"):
        TextEncoder(tmp_path / "manifest.yaml")


def test_long_text_clipping_never_changes_the_result(encoder):
    words = " ".join(f"w{i}" for i in range(40_000))  # ~250 kB, far beyond max_length tokens
    full = encoder.tokenizer.encode(words)
    assert encoder._tokenize([words])[0].ids == full.ids
    sparse = "door" + " " * 20_000 + "window"  # long but only two tokens: not clipped away
    assert encoder._tokenize([sparse])[0].ids == encoder.tokenizer.encode(sparse).ids
    assert len(encoder._tokenize([sparse])[0].ids) == 4
