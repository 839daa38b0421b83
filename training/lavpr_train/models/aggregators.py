"""Aggregators: feature map (N, C, H, W) -> global descriptor (N, D).

Only GeM is implemented; add MixVPR / NetVLAD here and register them in ``AGGREGATORS``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeM(nn.Module):
    """Generalised-mean pooling: ``(mean_hw clamp(x, eps)^p)^(1/p)`` per channel.

    ``p`` is a learnable scalar (3 by default); ``p=1`` is average pooling and ``p -> inf`` max
    pooling. ``eps`` keeps the power well defined for the zeros a ReLU6 backbone produces.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learn_p: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p, requires_grad=learn_p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(min=self.eps).pow(self.p)
        x = F.adaptive_avg_pool2d(x, 1).pow(1.0 / self.p)
        return x.flatten(1)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()):.4f}, eps={self.eps}"


def build_aggregator(name: str, in_channels: int, **kwargs) -> tuple[nn.Module, int]:
    """(module, output dim) for an aggregator name."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator '{name}'; known: {', '.join(sorted(AGGREGATORS))}")
    return AGGREGATORS[name](in_channels, **kwargs)


def _gem(in_channels: int, p: float = 3.0, eps: float = 1e-6) -> tuple[nn.Module, int]:
    return GeM(p=p, eps=eps), in_channels


AGGREGATORS = {"gem": _gem}
