"""The full image model: backbone -> aggregator -> L2 -> optional head -> L2."""

from __future__ import annotations

from dataclasses import dataclass
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


class VPRModel(nn.Module):
    """Image (N, 3, H, W) normalised as in the manifest -> (N, D) L2-normalised descriptors."""

    def __init__(self, cfg: ModelConfig, weights: str | Path | None = "default") -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, channels = build_backbone(cfg.backbone, weights)
        self.aggregator, dim = build_aggregator(
            cfg.aggregator, channels, p=cfg.gem_p, eps=cfg.gem_eps
        )
        self.head = ProjectionHead(dim, cfg.head_dim, cfg.head_dropout) if cfg.head_dim else None
        self.output_dim = cfg.head_dim or dim

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
