"""Aggregators: feature map (N, C, H, W) -> global descriptor (N, D).

``gem`` (generalised mean), ``mixvpr`` (Ali-bey et al., WACV 2023: feature-mixer MLPs over the
flattened spatial map, then channel and row projections) and ``netvlad`` (Arandjelovic et al.,
CVPR 2016: soft-assignment residuals to K learned centroids).
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


class FeatureMixer(nn.Module):
    def __init__(self, hw: int, mlp_ratio: int = 1) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            nn.LayerNorm(hw),
            nn.Linear(hw, hw * mlp_ratio),
            nn.ReLU(),
            nn.Linear(hw * mlp_ratio, hw),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x)


class MixVPR(nn.Module):
    """MixVPR: (N, C, H, W) -> ``mix_depth`` feature mixers over the H*W axis -> channel
    projection C -> ``out_channels`` -> row projection H*W -> ``out_rows`` -> flatten
    (``out_channels * out_rows``-d). Needs the feature-map size at build time."""

    def __init__(
        self,
        in_channels: int,
        in_hw: tuple[int, int],
        out_channels: int = 256,
        out_rows: int = 4,
        mix_depth: int = 4,
        mlp_ratio: int = 1,
    ) -> None:
        super().__init__()
        hw = int(in_hw[0] * in_hw[1])
        self.in_hw = tuple(in_hw)
        self.mix = nn.Sequential(*[FeatureMixer(hw, mlp_ratio) for _ in range(mix_depth)])
        self.channel_proj = nn.Linear(in_channels, out_channels)
        self.row_proj = nn.Linear(hw, out_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix(x.flatten(2))  # (N, C, HW)
        x = self.channel_proj(x.permute(0, 2, 1))  # (N, HW, out_c)
        x = self.row_proj(x.permute(0, 2, 1))  # (N, out_c, out_rows)
        return x.flatten(1)


class NetVLAD(nn.Module):
    """NetVLAD with ``clusters`` centroids: intra-normalised residual sums, flattened
    (``clusters * C``-d; the model L2-normalises the result)."""

    def __init__(self, in_channels: int, clusters: int = 16, alpha: float = 50.0) -> None:
        super().__init__()
        self.clusters = clusters
        self.assign = nn.Conv2d(in_channels, clusters, 1, bias=True)
        self.centroids = nn.Parameter(torch.randn(clusters, in_channels) * 0.1)
        with torch.no_grad():  # standard init: assignment ~ alpha * <x, c> - alpha/2 |c|^2
            self.assign.weight.copy_((2 * alpha * self.centroids)[..., None, None])
            self.assign.bias.copy_(-alpha * self.centroids.norm(dim=1) ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        x = F.normalize(x, p=2, dim=1)
        soft = F.softmax(self.assign(x).flatten(2), dim=1)  # (N, K, HW)
        flat = x.flatten(2)  # (N, C, HW)
        vlad = torch.bmm(soft, flat.transpose(1, 2))  # (N, K, C)
        vlad = vlad - soft.sum(2, keepdim=True) * self.centroids.unsqueeze(0)
        vlad = F.normalize(vlad, p=2, dim=2)
        return vlad.reshape(n, self.clusters * c)


def build_aggregator(
    name: str, in_channels: int, in_hw: tuple[int, int] | None = None, **kwargs
) -> tuple[nn.Module, int]:
    """(module, output dim) for an aggregator name; ``in_hw`` is the feature-map size (MixVPR
    needs it); ``kwargs`` are the aggregator's own options."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator '{name}'; known: {', '.join(sorted(AGGREGATORS))}")
    return AGGREGATORS[name](in_channels, in_hw, **kwargs)


def _gem(in_channels: int, in_hw=None, p: float = 3.0, eps: float = 1e-6):
    return GeM(p=p, eps=eps), in_channels


def _mixvpr(in_channels: int, in_hw=None, out_channels=256, out_rows=4, mix_depth=4, mlp_ratio=1):
    if in_hw is None:
        raise ValueError("mixvpr needs the backbone's feature-map size (in_hw)")
    m = MixVPR(in_channels, in_hw, out_channels, out_rows, mix_depth, mlp_ratio)
    return m, out_channels * out_rows


def _netvlad(in_channels: int, in_hw=None, clusters: int = 16, alpha: float = 50.0):
    return NetVLAD(in_channels, clusters, alpha), clusters * in_channels


AGGREGATORS = {"gem": _gem, "mixvpr": _mixvpr, "netvlad": _netvlad}
