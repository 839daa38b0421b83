"""CosPlace / EigenPlaces ``GeoLocalizationNet``: CNN -> L2 -> GeM -> FC -> L2.

Both projects save the same module tree: ``backbone.<i>`` (torchvision ResNet children without
avgpool/fc, or VGG16 ``features`` without the last ReLU+pool) and ``aggregation.{1.p,3.weight,
3.bias}`` (GeM exponent and the FC layer)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet_channels, resnet_layers, vgg16_layers

BACKBONES = ("ResNet18", "ResNet50", "ResNet101", "ResNet152", "VGG16")


class L2Norm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1)


class GeM(nn.Module):
    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the mean over H, W is the published full-window avg_pool2d (traceable to ONNX)
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1), keepdim=True).pow(1.0 / self.p)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0]


class GeoLocalizationNet(nn.Module):
    def __init__(self, backbone: str = "ResNet50", fc_output_dim: int = 2048) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, not {backbone!r}")
        if backbone == "VGG16":
            layers, channels = vgg16_layers(), 512
        else:
            layers, channels = resnet_layers(backbone), resnet_channels(backbone)
        self.backbone = nn.Sequential(*layers)
        self.aggregation = nn.Sequential(
            L2Norm(), GeM(), Flatten(), nn.Linear(channels, fc_output_dim), L2Norm()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aggregation(self.backbone(x))
