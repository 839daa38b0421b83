"""Train the projection head on Nordland (summer <-> winter) with a frozen backbone.

The backbone and GeM are frozen, so their pooled 1280-d descriptors are computed once and cached;
training then only runs the small head (seconds per epoch on CPU). Loss: multi-positive InfoNCE
+ batch-hard triplet; positives are the same place (+-1 frame) in either season. The Nordland
route is split along its length (train / val / test, with gaps); Corridor is only evaluated.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .losses import batch_hard_triplet, multi_positive_info_nce, place_masks
from .models import ModelConfig, VPRModel


@dataclass
class TrainConfig:
    out: str = "runs/head"
    weights: str = "default"
    head_dim: int = 256
    epochs: int = 30
    batch_places: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    train_fraction: float = 0.7
    val_fraction: float = 0.1
    gap: int = 10
    max_minutes: float = 5.0
    seed: int = 0
    temperature: float = 0.07
    margin: float = 0.1
    triplet_weight: float = 0.5
    dropout: float = 0.1
    cache: str | None = None
    features_from_onnx: str | None = None


@torch.no_grad()
def pooled_features(model: VPRModel, paths, batch: int = 64) -> np.ndarray:
    out = []
    for s in range(0, len(paths), batch):
        x = data.preprocess([data.load_rgb(p) for p in paths[s : s + batch]])
        out.append(model.pooled(torch.from_numpy(x)).numpy())
    return np.concatenate(out).astype(np.float32)


def feature_cache(
    model: VPRModel, path: Path, onnx_manifest: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Pooled (pre-head) descriptors of every Nordland and Corridor image, cached in ``path``.

    With ``onnx_manifest`` (an exported no-head model of the same backbone, e.g.
    models/mobilenetv2-gem-imagenet) they come from onnxruntime, about 4x faster on CPU than
    torch here; parity with torch is 1e-6.
    """
    if path.is_file():
        with np.load(path) as z:
            return dict(z)
    t0 = time.perf_counter()
    if onnx_manifest is not None:
        from .evaluate import OrtImageModel

        ort_model = OrtImageModel(onnx_manifest, threads=torch.get_num_threads())
        if ort_model.m.get("extra", {}).get("head_dim"):
            raise ValueError(f"{onnx_manifest} has a projection head; need the pooled model")

        def encode(paths):
            return ort_model.encode_paths(paths)
    else:

        def encode(paths):
            return pooled_features(model, paths)

    summer, winter = data.nordland_pairs()
    cor = data.corridor()
    from .progress import encode_in_chunks

    parts = {
        "summer": summer,
        "winter": winter,
        "corridor_map": cor.ref_paths,
        "corridor_query": cor.query_paths,
    }
    feats = {k: encode_in_chunks(encode, list(v), f"caching {k}") for k, v in parts.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **feats)
    print(f"cached pooled features -> {path} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return feats


def recall1(map_d: np.ndarray, q_d: np.ndarray, tolerance: int) -> float:
    n = len(map_d)
    pos = [set(range(max(0, i - tolerance), min(n, i + tolerance + 1))) for i in range(n)]
    return data.recall_at_k(map_d, q_d, pos, (1,))[1]


def evaluate(head, feats, splits) -> dict[str, float]:
    """R@1 of descriptors after ``head`` (None = pooled baseline) on each split + Corridor."""

    def proj(x):
        if head is None:
            return x
        with torch.no_grad():
            return F.normalize(head(torch.from_numpy(x)), dim=1).numpy()

    out = {}
    for name, (a, b) in splits.items():
        out[f"nordland_{name}_R@1"] = recall1(
            proj(feats["summer"][a:b]), proj(feats["winter"][a:b]), 1
        )
    cor = data.corridor()
    out["corridor_R@1"] = data.recall_at_k(
        proj(feats["corridor_map"]), proj(feats["corridor_query"]), cor.positives, (1,)
    )[1]
    return {k: round(v, 4) for k, v in out.items()}


def train_head(cfg: TrainConfig) -> Path:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    mcfg = ModelConfig(head_dim=cfg.head_dim, head_dropout=cfg.dropout)
    model = VPRModel(mcfg, weights=cfg.weights).eval()
    feats = feature_cache(
        model, Path(cfg.cache) if cfg.cache else out / "features.npz", cfg.features_from_onnx
    )

    n = len(feats["summer"])
    n_train = int(n * cfg.train_fraction)
    n_val = int(n * cfg.val_fraction)
    splits = {
        "train": (0, n_train),
        "val": (n_train + cfg.gap, n_train + cfg.gap + n_val),
        "test": (n_train + 2 * cfg.gap + n_val, n),
    }
    summer = torch.from_numpy(feats["summer"])
    winter = torch.from_numpy(feats["winter"])
    head = model.head
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, n_train // cfg.batch_places)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)

    base = evaluate(None, feats, splits)
    print(f"baseline (no head): {base}", flush=True)
    log = [{"epoch": 0, "head": False, **base}]
    best, best_val = None, -1.0
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = rng.permutation(np.arange(1, n_train - 1))
        total = 0.0
        for s in range(steps_per_epoch):
            places = torch.from_numpy(order[s * cfg.batch_places : (s + 1) * cfg.batch_places])
            # one summer and one winter view per place, each jittered by up to +-1 frame
            fs = (places + torch.from_numpy(rng.integers(-1, 2, len(places)))).clamp(0, n_train - 1)
            fw = (places + torch.from_numpy(rng.integers(-1, 2, len(places)))).clamp(0, n_train - 1)
            x = torch.cat([summer[fs], winter[fw]])
            frames = torch.cat([fs, fw])
            z = F.normalize(head(x), dim=1)
            sim = z @ z.T
            pos, neg = place_masks(frames, 1, 3)
            loss = multi_positive_info_nce(sim, pos, neg, cfg.temperature)
            loss = loss + cfg.triplet_weight * batch_hard_triplet(sim, pos, neg, cfg.margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        head.eval()
        metrics = evaluate(head, feats, splits)
        row = {
            "epoch": epoch,
            "loss": round(total / steps_per_epoch, 4),
            **metrics,
            "elapsed_s": round(time.perf_counter() - t0, 1),
        }
        log.append(row)
        print(row, flush=True)
        if metrics["nordland_val_R@1"] > best_val:
            best_val = metrics["nordland_val_R@1"]
            best = {"epoch": epoch, **metrics}
            torch.save(
                {
                    "config": asdict(mcfg),
                    "model": {
                        k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")
                    },
                    "train_config": asdict(cfg),
                    "splits": splits,
                    "metrics": {"baseline": base, "selected": best},
                },
                out / "best.pt",
            )
        if time.perf_counter() - t0 > cfg.max_minutes * 60:
            print(f"time budget of {cfg.max_minutes} min reached", flush=True)
            break
    (out / "log.json").write_text(
        json.dumps(
            {
                "config": asdict(cfg),
                "splits": splits,
                "baseline": base,
                "selected": best,
                "epochs": log,
            },
            indent=1,
        )
    )
    print(f"selected epoch (best Nordland val R@1): {best}\ncheckpoint: {out / 'best.pt'}")
    return out / "best.pt"
