"""The training loop: GPS-supervised metric learning of an image VPR encoder.

Recipe (frozen-backbone VPR scripts + MixVPR/LaVPR): backbone (frozen by default, optional
progressive unfreezing) -> aggregator -> projection head; batches of P places x K images;
positives within ``pos_radius`` (25 m), negatives beyond ``neg_radius`` (100 m); hard-negative
places from a faiss index over the current embeddings, refreshed every epoch; loss = 0.3 x
triplet (online batch-hard or multi-similarity mining) + 1.0 x multi-positive InfoNCE (T=0.07).

Runs on one CPU/GPU or under ``torchrun`` (DDP; the process group is initialised only when
``WORLD_SIZE > 1``; rank 0 validates, logs and writes checkpoints). Run folder: ``config.yaml``,
``batch_log.csv``, ``epoch_log.csv``, ``last.pt`` (resume), ``best.pt`` (best validation R@1).
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml

from . import data
from .geo import GeoSamples, load_source, load_val
from .losses import vpr_loss
from .mining import PlaceIndex, gps_masks, hard_negative_places, place_batches
from .models import VPRModel, model_config_from_dict
from .models.backbones import set_trainable_blocks


@dataclass
class TrainConfig:
    out: str = "runs/train"
    # model: ModelConfig fields (backbone, aggregator, head_dim, input_size, aggregator_args...)
    model: dict = field(default_factory=lambda: {"head_dim": 256})
    weights: str | None = "default"  # backbone weights: default / a path / null (random)
    # data
    train: dict = field(default_factory=lambda: {"kind": "nordland", "start": 0, "stop": 2500})
    val: list = field(default_factory=lambda: ["corridor", "nordland:2600:2900"])
    select_on: str | None = None  # val set whose R@1 picks best.pt (default: the first)
    pos_radius: float = 25.0
    neg_radius: float = 100.0
    cluster_radius: float = 12.5  # only used when the data has no place ids
    cluster_method: str = "grid"
    places_per_batch: int = 32
    images_per_place: int = 2
    steps_per_epoch: int | None = None  # None: one pass over the places
    hard_negatives: bool = True
    hard_negative_k: int = 20
    hard_fraction: float = 0.5
    # loss
    loss: str = "hybrid"
    miner: str = "batch_hard"
    triplet_weight: float = 0.3
    contrastive_weight: float = 1.0
    margin: float = 0.1
    temperature: float = 0.07
    # optimisation
    epochs: int = 10
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    freeze_backbone: bool = True
    unfreeze: dict = field(default_factory=dict)  # {epoch: last N backbone blocks trainable}
    cache_features: bool = True  # cache frozen-backbone feature maps (only when never unfrozen)
    # runtime
    seed: int = 0
    deterministic: bool = True
    amp: bool = True  # fp16 autocast + GradScaler on CUDA; ignored on CPU
    device: str = "auto"
    threads: int = 2
    num_workers: int = 0
    eval_batch: int = 32
    max_minutes: float | None = None
    progress: bool = True
    resume: str | None = None  # a checkpoint, or "auto" (out/last.pt when present)


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """TrainConfig from a YAML file plus keyword overrides (None values ignored)."""
    raw: dict = {}
    if path:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown training config keys: {sorted(unknown)}")
    cfg = TrainConfig(**raw)
    cfg.unfreeze = {int(k): int(v) for k, v in (cfg.unfreeze or {}).items()}
    return cfg


# --- distributed helpers ---------------------------------------------------------------------


def _dist_env() -> tuple[int, int, int]:
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


# --- data ------------------------------------------------------------------------------------


class ImageSet(torch.utils.data.Dataset):
    """Paths -> preprocessed (3, H, W) tensors with the runtime's preprocessing."""

    def __init__(self, paths, input_size) -> None:
        self.paths, self.input_size = list(paths), tuple(input_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(data.preprocess([data.load_rgb(self.paths[i])], self.input_size)[0])


class _Forward(torch.nn.Module):
    """What DDP wraps: images -> descriptors, or cached feature maps -> descriptors."""

    def __init__(self, model: VPRModel, cached: bool) -> None:
        super().__init__()
        self.model, self.cached = model, cached

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.from_features(x) if self.cached else self.model(x)


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.rank, self.world, local = _dist_env()
        self.distributed = self.world > 1
        if cfg.device == "auto":
            dev = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        else:
            dev = cfg.device
        self.device = torch.device(dev)
        if self.distributed:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, cfg.threads))
        else:
            torch.cuda.set_device(self.device)
        seed_everything(cfg.seed, cfg.deterministic)
        self.out = Path(cfg.out)
        self.is_main = self.rank == 0
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)

        self.mcfg = model_config_from_dict(cfg.model)
        self.model = VPRModel(self.mcfg, weights=cfg.weights).to(self.device)
        self.amp = bool(cfg.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

        self.train_set: GeoSamples = load_source(cfg.train)
        if self.train_set.place is None:  # no place ids in the data: cluster the positions
            from .geo import cluster_places

            self.train_set.place = cluster_places(
                self.train_set.xy, cfg.cluster_radius, cfg.cluster_method
            )
        labels = self.train_set.place
        self.places = PlaceIndex(labels, self.train_set.xy)
        self.val_sets = [load_val(v) for v in cfg.val]
        self.select_on = cfg.select_on or (self.val_sets[0].name if self.val_sets else None)

        self.cached = bool(cfg.freeze_backbone and not cfg.unfreeze and cfg.cache_features)
        self._cache: dict[str, torch.Tensor] = {}

        backbone_params = list(self.model.backbone.parameters())
        bb_ids = {id(p) for p in backbone_params}
        rest = [p for p in self.model.parameters() if id(p) not in bb_ids]
        self.opt = torch.optim.AdamW(
            [
                {"params": rest, "lr": cfg.lr},
                {"params": backbone_params, "lr": cfg.lr * cfg.backbone_lr_scale},
            ],
            weight_decay=cfg.weight_decay,
        )
        self.start_epoch, self.best, self.global_step = 1, {"R@1": -1.0, "epoch": 0}, 0
        self.history: list[dict] = []
        self._resume()
        self.n_trainable_blocks: int | None = None

    # -- checkpoints --------------------------------------------------------------------------

    def _resume(self) -> None:
        ref = self.cfg.resume
        if not ref:
            return
        path = self.out / "last.pt" if ref == "auto" else Path(ref)
        if not path.is_file():
            if ref == "auto":
                return
            raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best = state.get("best", self.best)
        self.global_step = int(state.get("global_step", 0))
        if self.is_main:
            print(f"resumed from {path} (epoch {state['epoch']}, best {self.best})", flush=True)

    def _save(self, name: str, epoch: int, metrics: dict) -> Path:
        state = {
            "config": asdict(self.mcfg),
            "train_config": asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None,
            "epoch": epoch,
            "global_step": self.global_step,
            "best": self.best,
            "metrics": {"epoch": epoch, **metrics},
            "weights": self.cfg.weights,
        }
        tmp = self.out / f".{name}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out / name)
        return self.out / name

    # -- encoding -----------------------------------------------------------------------------

    def _loader(self, paths, batch: int):
        return torch.utils.data.DataLoader(
            ImageSet(paths, self.mcfg.input_size),
            batch_size=batch,
            shuffle=False,
            num_workers=self.cfg.num_workers,
        )

    @torch.no_grad()
    def _fill_cache(self, paths) -> None:
        todo = [p for p in dict.fromkeys(str(p) for p in paths) if p not in self._cache]
        if not todo:
            return
        self.model.backbone.eval()
        t0 = time.perf_counter()
        s = 0
        batches = _progress(
            self._loader(todo, self.cfg.eval_batch),
            self.cfg.progress and self.is_main,
            f"caching {len(todo)} feature maps",
        )
        for x in batches:
            with torch.autocast(self.device.type, torch.float16, enabled=self.amp):
                f = self.model.backbone(x.to(self.device)).half()
            for j in range(len(f)):
                self._cache[todo[s + j]] = f[j]
            s += len(f)
        if self.is_main:
            print(
                f"cached {len(todo)} frozen-backbone feature maps "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

    def _features(self, paths) -> torch.Tensor:
        return torch.stack([self._cache[str(p)] for p in paths]).float()

    @torch.no_grad()
    def encode(self, paths) -> np.ndarray:
        self.model.eval()
        out = []
        if self.cached:
            self._fill_cache(paths)
            for s in range(0, len(paths), 256):
                out.append(self.model.from_features(self._features(paths[s : s + 256])).cpu())
        else:
            for x in self._loader(paths, self.cfg.eval_batch):
                with torch.autocast(self.device.type, torch.float16, enabled=self.amp):
                    out.append(self.model(x.to(self.device)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.output_dim), np.float32)

    def validate(self) -> dict[str, float]:
        metrics = {}
        for vs in self.val_sets:
            r = data.recall_at_k(
                self.encode(vs.ref_paths), self.encode(vs.query_paths), vs.positives
            )
            for k, v in r.items():
                metrics[f"{vs.name}_R@{k}"] = round(v, 4)
        return metrics

    # -- training -----------------------------------------------------------------------------

    def _apply_unfreeze(self, epoch: int) -> bool:
        """Set which backbone blocks train this epoch; True when it changed."""
        n = 0 if self.cfg.freeze_backbone else -1
        for e in sorted(self.cfg.unfreeze):
            if epoch >= e:
                n = self.cfg.unfreeze[e]
        if n == self.n_trainable_blocks:
            return False
        self.n_trainable_blocks = n
        count = set_trainable_blocks(self.model.backbone, n)
        if self.is_main:
            what = "all" if n < 0 else f"last {n}"
            print(f"epoch {epoch}: backbone blocks trainable: {what} ({count} params)", flush=True)
        return True

    def _wrapped(self) -> torch.nn.Module:
        fwd = _Forward(self.model, self.cached)
        if not self.distributed:
            return fwd
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(fwd, device_ids=ids)

    def _mine(self, epoch: int) -> tuple[np.ndarray | None, float]:
        if not self.cfg.hard_negatives:
            return None, 0.0
        t0 = time.perf_counter()
        hn = None
        if self.is_main:
            firsts = [self.train_set.paths[m[0]] for m in self.places.members]
            emb = self.encode(firsts)
            hn = hard_negative_places(
                emb, self.places, self.cfg.neg_radius, self.cfg.hard_negative_k
            )
        if self.distributed:
            import torch.distributed as dist

            box = [hn]
            dist.broadcast_object_list(box, src=0)
            hn = box[0]
        return hn, time.perf_counter() - t0

    def _batches(self, epoch: int, hard) -> list[list[int]]:
        rng = np.random.default_rng([self.cfg.seed, epoch])
        batches = place_batches(
            self.places,
            self.cfg.places_per_batch,
            self.cfg.images_per_place,
            rng,
            hard,
            self.cfg.hard_fraction,
            None,
        )
        if self.cfg.steps_per_epoch:
            batches = batches[: self.cfg.steps_per_epoch * self.world]
        if self.distributed:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(
                batches, num_replicas=self.world, rank=self.rank, shuffle=False
            )
            batches = [batches[i] for i in sampler]
        return batches

    def _batch_inputs(self, idx: list[int]) -> torch.Tensor:
        paths = [self.train_set.paths[i] for i in idx]
        if self.cached:
            return self._features(paths)
        return torch.from_numpy(
            data.preprocess([data.load_rgb(p) for p in paths], self.mcfg.input_size)
        )

    def fit(self) -> dict:
        cfg = self.cfg
        if self.is_main:
            (self.out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
        if self.cached:
            self._fill_cache(self.train_set.paths)
            if self.is_main:
                for vs in self.val_sets:
                    self._fill_cache(list(vs.ref_paths) + list(vs.query_paths))
        total_steps = None
        t_start = time.perf_counter()
        batch_log = _CsvLog(self.out / "batch_log.csv") if self.is_main else None
        epoch_log = _CsvLog(self.out / "epoch_log.csv") if self.is_main else None
        if self.start_epoch == 1 and self.is_main and self.val_sets:
            base = self.validate()
            epoch_log.write({"epoch": 0, **base})
            print(f"epoch 0 (before training): {base}", flush=True)
        labels_all = torch.from_numpy(self.places.labels)
        xy_all = torch.from_numpy(self.train_set.xy)
        for epoch in range(self.start_epoch, cfg.epochs + 1):
            if self._apply_unfreeze(epoch) or epoch == self.start_epoch:
                wrapped = self._wrapped()
            self.model.train()
            if self.n_trainable_blocks == 0:
                self.model.backbone.eval()  # frozen: keep BatchNorm statistics
            hard, mine_s = self._mine(epoch)
            self.model.train()
            if self.n_trainable_blocks == 0:
                self.model.backbone.eval()
            batches = self._batches(epoch, hard)
            if total_steps is None:
                total_steps = len(batches) * (cfg.epochs - self.start_epoch + 1)
            t_epoch = time.perf_counter()
            losses = []
            bar = _progress(batches, cfg.progress and self.is_main, f"epoch {epoch}")
            for step, idx in enumerate(bar, start=1):
                t0 = time.perf_counter()
                x = self._batch_inputs(idx).to(self.device, non_blocking=True)
                t_data = time.perf_counter() - t0
                pos, neg = gps_masks(xy_all[idx], cfg.pos_radius, cfg.neg_radius)
                pos, neg = pos.to(self.device), neg.to(self.device)
                with torch.autocast(self.device.type, torch.float16, enabled=self.amp):
                    z = wrapped(x)
                loss, parts = vpr_loss(
                    z.float(),
                    labels_all[idx].to(self.device),
                    pos,
                    neg,
                    cfg.loss,
                    cfg.triplet_weight,
                    cfg.contrastive_weight,
                    cfg.margin,
                    cfg.temperature,
                    cfg.miner,
                )
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
                self.global_step += 1
                dt = time.perf_counter() - t0
                losses.append(float(loss.detach()))
                if self.is_main:
                    batch_log.write(
                        {
                            "epoch": epoch,
                            "step": step,
                            "global_step": self.global_step,
                            "loss": round(losses[-1], 6),
                            **{k: round(v, 6) for k, v in parts.items()},
                            "lr": self.opt.param_groups[0]["lr"],
                            "batch_size": len(idx),
                            "data_time_s": round(t_data, 4),
                            "step_time_s": round(dt, 4),
                        }
                    )
                    if hasattr(bar, "set_postfix"):
                        bar.set_postfix(loss=f"{losses[-1]:.4f}")
            epoch_s = time.perf_counter() - t_epoch
            row = {
                "epoch": epoch,
                "train_loss": round(float(np.mean(losses)) if losses else math.nan, 6),
                "steps": len(losses),
                "epoch_time_s": round(epoch_s, 2),
                "mining_time_s": round(mine_s, 2),
            }
            if self.is_main:
                metrics = self.validate() if self.val_sets else {}
                row.update(metrics)
                key = f"{self.select_on}_R@1"
                improved = key in metrics and metrics[key] > self.best["R@1"]
                if improved:
                    self.best = {"R@1": metrics[key], "epoch": epoch, "set": self.select_on}
                row["best_R@1"] = self.best["R@1"]
                self._save("last.pt", epoch, row)
                if improved or not self.val_sets:
                    self._save("best.pt", epoch, row)
                epoch_log.write(row)
                self.history.append(row)
                print(row, flush=True)
            if self.distributed:
                import torch.distributed as dist

                dist.barrier()
            if cfg.max_minutes and time.perf_counter() - t_start > cfg.max_minutes * 60:
                if self.is_main:
                    print(f"time budget of {cfg.max_minutes} min reached", flush=True)
                break
        return {"best": self.best, "history": self.history, "out": str(self.out)}

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class _CsvLog:
    """Append rows to a CSV; the header grows when new columns appear (file rewritten)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] = []
        self.rows: list[dict] = []
        if path.is_file():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or [])
                self.rows = list(reader)

    def write(self, row: dict) -> None:
        new = [k for k in row if k not in self.columns]
        self.rows.append(row)
        if new or not self.path.is_file():
            self.columns += new
            with open(self.path, "w", newline="") as fh:
                w = csv.DictWriter(fh, self.columns)
                w.writeheader()
                w.writerows(self.rows)
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, self.columns).writerow(row)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False, dynamic_ncols=True)


def train(cfg: TrainConfig) -> dict:
    trainer = Trainer(cfg)
    try:
        return trainer.fit()
    finally:
        trainer.close()
