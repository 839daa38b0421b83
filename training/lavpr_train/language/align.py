"""Cross-modal alignment: a projection head from text embeddings into a frozen image model's
descriptor space (LaVPR's alignment mode), trained on image + description pairs.

The text encoder (MiniLM/bge, frozen) and the image encoder (an exported ONNX model, frozen)
give the features once; the head (and, with ``--pooling reweight``, the token-reweighting
pooler over cached token states) is trained with a cross-modal loss: multi-positive InfoNCE
(both directions) or multi-similarity. Positives: the image of the same place, or images of
frames within ``--positive-radius`` on the same traverse. The export is ONE text graph (encoder
+ pooling + head + L2) of ``kind: text`` with ``extra.target_image_model`` = the image model_id,
so the runtime can search image descriptors with a sentence.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import (
    frame_positive_mask,
    image_features,
    info_nce,
    model_id_of,
    multi_similarity,
    read_descriptions,
)
from .text import (
    POOLINGS,
    PooledEncoder,
    TokenReweightPooler,
    export_pooled_encoder,
    hf_batch,
    load_encoder,
    pool,
    resolve_text_model,
)

LOSSES = ("infonce", "ms")


class ProjectionHead(nn.Module):
    """text_dim -> hidden -> image_dim (GELU MLP); a linear map with ``hidden=0``."""

    def __init__(self, text_dim: int, image_dim: int, hidden: int = 1024, dropout: float = 0.1):
        super().__init__()
        if hidden <= 0:
            self.net: nn.Module = nn.Linear(text_dim, image_dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(text_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, image_dim),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class Pairs:
    """Training/validation pairs: texts, frozen image descriptors, frame index, traverse id."""

    texts: list[str]
    images: np.ndarray
    frames: np.ndarray
    traverse: np.ndarray
    names: list[str] = field(default_factory=list)


def load_pairs(
    image_model: str | Path, sets: list[tuple[Path, Path]], frame_range: tuple[int, int] | None
) -> Pairs:
    """(image folder, description CSV) pairs -> described images with their descriptors.

    Frame index = position of the image in its sorted folder; ``frame_range`` keeps [a, b)."""
    texts, paths, frames, trav = [], [], [], []
    for t, (folder, csv_path) in enumerate(sets):
        table = read_descriptions(csv_path)
        imgs = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
        for i, p in enumerate(imgs):
            if p.name in table and (frame_range is None or frame_range[0] <= i < frame_range[1]):
                texts.append(table[p.name])
                paths.append(p)
                frames.append(i)
                trav.append(t)
    if not texts:
        raise ValueError("no described images found (check the folders and CSVs)")
    return Pairs(
        texts,
        image_features(image_model, paths),
        np.asarray(frames),
        np.asarray(trav),
        [f"{p.parent.name}/{p.name}" for p in paths],
    )


@dataclass
class AlignConfig:
    out: str
    image_model: str
    sets: list[tuple[Path, Path]]
    text_model: str | None = None
    model_id: str | None = None
    pooling: str = "mean"
    loss: str = "infonce"
    hidden: int = 1024
    dropout: float = 0.1
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    positive_radius: int = 2
    train_frames: tuple[int, int] | None = None
    seed: int = 0
    max_length: int = 256
    force: bool = False
    run_dir: str | None = None


def _token_states(encoder: PooledEncoder, model_dir: Path, texts, max_length: int):
    with torch.no_grad():
        ids, mask = hf_batch(model_dir, texts, max_length)
        return encoder.token_states(ids, mask), mask


def train_align(cfg: AlignConfig) -> dict:
    """Train the head (and pooler) and export; returns a summary (also written as JSON)."""
    if cfg.pooling not in POOLINGS or cfg.loss not in LOSSES:
        raise ValueError(f"pooling in {POOLINGS}, loss in {LOSSES}")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model_dir = resolve_text_model(cfg.text_model)
    bert = load_encoder(model_dir)
    for p in bert.parameters():
        p.requires_grad_(False)
    pairs = load_pairs(cfg.image_model, cfg.sets, cfg.train_frames)
    hidden_states, mask = _token_states(
        PooledEncoder(bert, "mean"), model_dir, pairs.texts, cfg.max_length
    )
    text_dim, image_dim = int(bert.config.hidden_size), pairs.images.shape[1]
    head = ProjectionHead(text_dim, image_dim, cfg.hidden, cfg.dropout)
    pooler = TokenReweightPooler(text_dim) if cfg.pooling == "reweight" else None
    params = list(head.parameters()) + (list(pooler.parameters()) if pooler else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    img = torch.from_numpy(pairs.images)
    fr, tr = torch.from_numpy(pairs.frames), torch.from_numpy(pairs.traverse)
    # Same place: same frame on the same traverse, or within the radius on it. Across
    # traverses frame numbers differ, so only the exact description/image pair is positive.
    pos = (frame_positive_mask(fr, fr, cfg.positive_radius) & (tr[:, None] == tr[None, :])) | (
        torch.eye(len(fr), dtype=torch.bool)
    )
    history = []
    for epoch in range(cfg.epochs):
        head.train()
        emb = F.normalize(head(pool(hidden_states, mask, cfg.pooling, pooler)), dim=1)
        sim = emb @ img.T
        if cfg.loss == "infonce":
            loss = 0.5 * (
                info_nce(sim, pos, cfg.temperature) + info_nce(sim.T, pos.T, cfg.temperature)
            )
        else:
            loss = multi_similarity(sim, pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 20 == 0 or epoch == cfg.epochs - 1:
            with torch.no_grad():
                top = sim.argmax(1)
                r1 = float(pos[torch.arange(len(top)), top].float().mean())
            history.append({"epoch": epoch, "loss": loss.item(), "train_r1": r1})
    head.eval()
    image_model_id = model_id_of(cfg.image_model)
    mid = cfg.model_id or f"minilm-to-{image_model_id}"
    enc = PooledEncoder(bert, cfg.pooling, pooler, head).eval()
    if cfg.run_dir:
        run = Path(cfg.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"head": head.state_dict(), "pooler": pooler.state_dict() if pooler else None},
            run / "align.pt",
        )
    final, err = export_pooled_encoder(
        cfg.out,
        mid,
        model_dir,
        enc,
        cfg.max_length,
        force=cfg.force,
        extra={
            "target_image_model": image_model_id,
            "target_image_dim": image_dim,
            "base_model": str(model_dir),
            "training": {
                "pairs": len(pairs.texts),
                "sets": [[str(a), str(b)] for a, b in cfg.sets],
                "train_frames": list(cfg.train_frames) if cfg.train_frames else "all",
                "loss": cfg.loss,
                "epochs": cfg.epochs,
                "final_loss": history[-1]["loss"],
                "train_recall@1": history[-1]["train_r1"],
            },
        },
        description=(
            f"cross-modal text encoder: {model_dir.name} ({cfg.pooling} pooling) + projection "
            f"head into the {image_dim}-d descriptor space of image model '{image_model_id}'"
        ),
    )
    summary = {
        "model": str(final),
        "pairs": len(pairs.texts),
        "parity_max_abs_error": err,
        "history": history,
        "seconds": time.perf_counter() - t0,
    }
    (final / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"lang-align: {len(pairs.texts)} pairs, final {history[-1]}, {summary['seconds']:.0f} s")
    return summary
