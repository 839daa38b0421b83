"""The full image model: backbone -> aggregator -> L2 -> optional head -> L2."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .aggregators import build_aggregator
from .backbones import build_backbone
from .heads import ProjectionHead


@dataclass
class ModelConfig:
    backbone: str = "mobilenetv2"
    aggregator: str = "gem"
    gem_p: float = 3.0
    gem_eps: float = 1e-6
    head_dim: int | None = None  # None: no projection head
    head_dropout: float = 0.1
    # feature-map size for aggregators that need it (MixVPR) is derived from this
    input_size: tuple[int, int] = (224, 224)
    aggregator_args: dict = field(default_factory=dict)  # e.g. {out_channels: 256, out_rows: 4}
    backbone_config: dict = field(default_factory=dict)  # e.g. a tiny Dinov2Config for tests

    def describe(self) -> str:
        head = f" + projection head {self.head_dim}-d" if self.head_dim else ""
        return f"{self.backbone} + {self.aggregator}{head}"


class VPRModel(nn.Module):
    """Image (N, 3, H, W) normalised as in the manifest -> (N, D) L2-normalised descriptors."""

    def __init__(self, cfg: ModelConfig, weights: str | Path | None = "default") -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, channels = build_backbone(cfg.backbone, weights, cfg.backbone_config)
        in_hw = None
        if cfg.aggregator == "mixvpr":
            with torch.no_grad():
                was = self.backbone.training
                fmap = self.backbone.eval()(torch.zeros(1, 3, *cfg.input_size))
                self.backbone.train(was)
            in_hw = tuple(fmap.shape[-2:])
        kwargs = dict(cfg.aggregator_args)
        if cfg.aggregator == "gem":
            kwargs = {"p": cfg.gem_p, "eps": cfg.gem_eps, **kwargs}
        self.aggregator, dim = build_aggregator(cfg.aggregator, channels, in_hw, **kwargs)
        self.pooled_dim = dim
        self.head = ProjectionHead(dim, cfg.head_dim, cfg.head_dropout) if cfg.head_dim else None
        self.output_dim = cfg.head_dim or dim

    def from_features(self, fmap: torch.Tensor) -> torch.Tensor:
        """Descriptor from a backbone feature map (used with cached frozen-backbone features)."""
        return self.project(F.normalize(self.aggregator(fmap), p=2, dim=1))

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Aggregated, L2-normalised descriptor before the head."""
        return F.normalize(self.aggregator(self.backbone(images)), p=2, dim=1)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Head (if any) on a pooled descriptor, L2-normalised."""
        if self.head is None:
            return pooled
        return F.normalize(self.head(pooled), p=2, dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.pooled(images))


def model_config_from_dict(d: dict) -> ModelConfig:
    """ModelConfig from a checkpoint/config mapping (unknown keys refused, tuples restored)."""
    known = set(ModelConfig.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    d = dict(d)
    if "input_size" in d:
        d["input_size"] = tuple(d["input_size"])
    return ModelConfig(**d)
