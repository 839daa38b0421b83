"""Random weights in a published checkpoint's exact layout: for tests (no published file is
downloadable here) and for timing the architectures at their official shapes."""

from __future__ import annotations

import torch

from .importer import build_model


def random_state(name: str, options: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """The architecture's state_dict with every tensor random (BN statistics positive, layer
    scales and GeM p away from their identity-like initial values)."""
    model, _ = build_model(name, options)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, t in model.state_dict().items():
        if not t.is_floating_point():
            out[key] = t.clone()
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(t.shape, generator=g)
        elif key.endswith(("gamma", "running_mean")):
            out[key] = 0.2 * torch.randn(t.shape, generator=g)
        elif key.endswith(".p"):
            out[key] = torch.full(t.shape, 3.0) + 0.5 * torch.rand(t.shape, generator=g)
        elif key.endswith("dust_bin"):
            out[key] = torch.tensor(0.8)
        else:
            scale = float(t.std()) if t.numel() > 1 and float(t.std()) > 0 else 0.1
            out[key] = t + 0.5 * scale * torch.randn(t.shape, generator=g)
    return out
