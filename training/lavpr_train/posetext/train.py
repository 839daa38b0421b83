"""Contrastive (multi-positive InfoNCE) training of the pose branch + text head; evaluation."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .data import DEFAULT_TEXT_MODEL, PoseTextSet, load_clip_folder, synthetic_set, text_embeddings
from .model import PoseTextConfig, PoseTextModel, multi_positive_infonce


@dataclass
class PTTrainConfig:
    out: str = "runs/posetext"
    data: str = "synthetic"  # or a clip folder (data.py)
    train_size: int = 12000
    test_size: int = 1000
    epochs: int = 20
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_minutes: float = 10.0
    text_model: str = DEFAULT_TEXT_MODEL


def build_sets(cfg: PTTrainConfig) -> tuple[PoseTextSet, PoseTextSet | None]:
    if cfg.data == "synthetic":
        return synthetic_set(cfg.train_size, cfg.seed), synthetic_set(cfg.test_size, cfg.seed + 1)
    return load_clip_folder(cfg.data), None


def train_posetext(cfg: PTTrainConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_data = time.perf_counter()
    train_set, test_set = build_sets(cfg)
    temb, text_model_id = text_embeddings(train_set.captions, cfg.text_model)
    data_s = time.perf_counter() - t_data
    mcfg = PoseTextConfig(steps=train_set.features.shape[1], text_dim=temb.shape[1])
    model = PoseTextModel(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    X = torch.from_numpy(train_set.features)
    T = torch.from_numpy(temb)
    P = torch.from_numpy(train_set.positives)
    n = len(X)
    history = []
    t0 = time.perf_counter()
    steps_per_epoch = max(1, n // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1
    )
    stop = False
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        losses = []
        for s in range(steps_per_epoch):
            b = order[s * cfg.batch : (s + 1) * cfg.batch]
            loss = multi_positive_infonce(
                model.pose(X[b]), model.text(T[b]), P[b][:, b], model.logit_scale
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if (time.perf_counter() - t0) / 60 > cfg.max_minutes:
                stop = True
                break
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "steps": len(losses),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        history.append(row)
        log(f"epoch {row['epoch']}: loss {row['loss']:.4f} ({row['seconds']} s)")
        if stop:
            log(f"stopping: max_minutes {cfg.max_minutes} reached")
            break
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    feat_cfg = _feature_cfg_dict()
    torch.save(
        {
            "state_dict": model.state_dict(),
            "config": mcfg.to_dict(),
            "features": feat_cfg,
            "text_model": text_model_id,
            "train_config": asdict(cfg),
            "history": history,
        },
        out / "posetext.pt",
    )
    with open(out / "log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["epoch", "loss", "steps", "seconds"])
        w.writeheader()
        w.writerows(history)
    result = {
        "model": model,
        "history": history,
        "seconds": time.perf_counter() - t0,
        "data_seconds": data_s,
        "out": out,
        "text_model": text_model_id,
    }
    if test_set is not None:
        metrics = evaluate_retrieval(model, test_set, cfg.text_model)
        (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2))
        log(f"held-out: {metrics}")
        result["metrics"] = metrics
    return result


def _feature_cfg_dict() -> dict:
    from .data import feature_config

    return asdict(feature_config())


@torch.no_grad()
def evaluate_retrieval(model: PoseTextModel, test: PoseTextSet, text_model: str) -> dict:
    """Instruction -> window Recall@1/5 over the whole held-out gallery: 'exact' counts only the
    window the caption was made for; 'compatible' any window whose last manoeuvres are the
    caption's (the caption cannot tell those apart)."""
    model.eval()
    temb, _ = text_embeddings(test.captions, text_model)
    pe = model.pose(torch.from_numpy(test.features))
    te = model.text(torch.from_numpy(temb))
    sims = (te @ pe.T).numpy()
    order = np.argsort(-sims, axis=1)[:, :5]
    n = len(sims)
    exact = order == np.arange(n)[:, None]
    comp = np.take_along_axis(test.positives, order, axis=1)
    # chance of 'compatible' R@1 for a random ranking, for reference
    return {
        "gallery": n,
        "exact_R@1": float(exact[:, 0].mean()),
        "exact_R@5": float(exact.any(1).mean()),
        "compatible_R@1": float(comp[:, 0].mean()),
        "compatible_R@5": float(comp.any(1).mean()),
        "chance_compatible_R@1": float(test.positives.mean()),
    }


def load_posetext(path: str | Path) -> tuple[PoseTextModel, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = PoseTextModel(PoseTextConfig(**ck["config"]))
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck
