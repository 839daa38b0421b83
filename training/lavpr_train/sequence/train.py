"""Train SeqNet on Nordland (summer <-> winter) with SeqMatchNet's triplet loss and mining.

Each epoch: descriptors of every training window are recomputed with the current model, and each
query window (winter, and summer as the second direction) gets its closest true positive and its
``num_neg`` hardest true negatives from the other season (mining.py). The loss is the triplet
margin loss on the training distance of the model's mode (model.py), averaged over negatives.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import TRAIN_RANGE, nordland_descriptors, windows
from .mining import mine
from .model import SeqNet, SeqNetConfig


@dataclass
class SeqTrainConfig:
    out: str = "runs/seqnet"
    model: SeqNetConfig = field(default_factory=SeqNetConfig)
    train_range: tuple[int, int] = TRAIN_RANGE
    epochs: int = 4
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    margin: float = 0.1
    num_neg: int = 5
    pos_tol: int = 1
    neg_tol: int | None = None  # default: seq_len
    seed: int = 0
    max_minutes: float = 10.0
    cache: str | None = "/tmp/lavpr_nordland_patchnorm_64x32_p8.npz"


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).sum(-1).clamp_min(1e-12).sqrt()


def triplet_loss(q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float) -> torch.Tensor:
    """q, p (B, E); n (B, K, E): mean over B and K of relu(d(q,p) - d(q,n) + margin)."""
    return torch.relu(_dist(q, p)[:, None] - _dist(q[:, None], n) + margin).mean()


@torch.no_grad()
def embed(model: SeqNet, wins: np.ndarray, batch: int = 512) -> torch.Tensor:
    model.eval()
    out = [
        model(torch.from_numpy(np.ascontiguousarray(wins[s : s + batch])))
        for s in range(0, len(wins), batch)
    ]
    return torch.cat(out)


def train_seqnet(
    cfg: SeqTrainConfig, data: tuple[np.ndarray, np.ndarray] | None = None, log=print
) -> dict:
    """Returns {'model', 'history', 'seconds', 'out'}; writes <out>/seqnet.pt and log.csv."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    summer, winter = data if data is not None else nordland_descriptors(cfg.cache)
    a, b = cfg.train_range
    L = cfg.model.seq_len
    neg_tol = L if cfg.neg_tol is None else cfg.neg_tol
    ws, ww = windows(summer[a:b], L), windows(winter[a:b], L)
    idx = torch.arange(len(ws)) + L - 1  # end frame of each window (relative to a)
    model = SeqNet(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    history = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        # mining with the current model: both directions (winter -> summer, summer -> winter)
        es, ew = embed(model, ws), embed(model, ww)
        tasks = []
        for q_w, r_w, q_e, r_e in ((ww, ws, ew, es), (ws, ww, es, ew)):
            pos, neg = mine(q_e, r_e, idx, idx, cfg.pos_tol, neg_tol, cfg.num_neg)
            tasks += [(q_w, r_w, i, int(pos[i]), neg[i].numpy()) for i in range(len(q_e))]
        order = rng.permutation(len(tasks))
        model.train()
        losses = []
        for s in range(0, len(order), cfg.batch):
            chunk = [tasks[k] for k in order[s : s + cfg.batch]]
            q = np.stack([t[0][t[2]] for t in chunk])
            p = np.stack([t[1][t[3]] for t in chunk])
            n = np.stack([t[1][t[4]] for t in chunk])  # (B, K, L, D)
            B, K = n.shape[:2]
            x = torch.from_numpy(np.concatenate([q, p, n.reshape(B * K, *n.shape[2:])]))
            e = model(x)
            loss = triplet_loss(e[:B], e[B : 2 * B], e[2 * B :].reshape(B, K, -1), cfg.margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if (time.perf_counter() - t0) / 60 > cfg.max_minutes:
                break
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "steps": len(losses),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        history.append(row)
        log(
            f"epoch {row['epoch']}: loss {row['loss']:.4f} ({row['steps']} steps, "
            f"{row['seconds']} s)"
        )
        if (time.perf_counter() - t0) / 60 > cfg.max_minutes:
            log(f"stopping: max_minutes {cfg.max_minutes} reached")
            break
    seconds = time.perf_counter() - t0
    meta = asdict(cfg)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "config": cfg.model.to_dict(),
            "train_config": meta,
            "history": history,
        },
        out / "seqnet.pt",
    )
    with open(out / "log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["epoch", "loss", "steps", "seconds"])
        w.writeheader()
        w.writerows(history)
    (out / "train_config.json").write_text(json.dumps(meta, indent=2, default=list))
    return {"model": model, "history": history, "seconds": seconds, "out": out}


def load_seqnet(path: str | Path) -> SeqNet:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = SeqNet(SeqNetConfig(**ck["config"]))
    model.load_state_dict(ck["state_dict"])
    return model.eval()
