"""MixVPR (Ali-bey et al., WACV 2023): ResNet50 cut after layer3 + feature-mixer MLPs.

Layout of the published Lightning checkpoint: ``backbone.model.<torchvision resnet names>``
(layer4/avgpool/fc removed) and ``aggregator.{mix.<i>.mix.{0,1,3},channel_proj,row_proj}``.
The mixer works on a fixed H*W token count, so the input size is part of the architecture."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class ResNetTrunk(nn.Module):
    def __init__(self, name: str = "resnet50") -> None:
        super().__init__()
        self.model = getattr(torchvision.models, name)(weights=None)
        self.model.avgpool = None
        self.model.fc = None
        self.model.layer4 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer3(m.layer2(m.layer1(x)))


class FeatureMixerLayer(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float = 1) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.mix = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x)


class MixVPRHead(nn.Module):
    def __init__(
        self,
        in_channels: int = 1024,
        in_h: int = 20,
        in_w: int = 20,
        out_channels: int = 1024,
        mix_depth: int = 4,
        mlp_ratio: float = 1,
        out_rows: int = 4,
    ) -> None:
        super().__init__()
        hw = in_h * in_w
        self.mix = nn.Sequential(*(FeatureMixerLayer(hw, mlp_ratio) for _ in range(mix_depth)))
        self.channel_proj = nn.Linear(in_channels, out_channels)
        self.row_proj = nn.Linear(hw, out_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix(x.flatten(2))
        x = self.channel_proj(x.permute(0, 2, 1)).permute(0, 2, 1)
        return F.normalize(self.row_proj(x).flatten(1), p=2, dim=-1)


class MixVPR(nn.Module):
    def __init__(
        self,
        input_size: tuple[int, int] = (320, 320),
        out_channels: int = 1024,
        out_rows: int = 4,
        mix_depth: int = 4,
        mlp_ratio: float = 1,
    ) -> None:
        super().__init__()
        h, w = input_size
        if h % 16 or w % 16:
            raise ValueError(f"MixVPR input {h}x{w} must be a multiple of 16 (ResNet stride)")
        self.backbone = ResNetTrunk()
        self.aggregator = MixVPRHead(
            1024, h // 16, w // 16, out_channels, mix_depth, mlp_ratio, out_rows
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aggregator(self.backbone(x))
