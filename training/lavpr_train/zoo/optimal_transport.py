"""SALAD (Izquierdo & Civera, CVPR 2024) and MegaLoc (Berton & Masone, 2025): DINOv2 tokens
aggregated by Sinkhorn optimal transport into cluster descriptors + a global token.

SALAD's checkpoint: ``backbone.model.<hub DINOv2>`` + ``aggregator.{token_features,
cluster_features,score,dust_bin}``. MegaLoc's safetensors: ``backbone.<DINOv2 without
mask_token>`` + ``aggregator.agg.<same aggregator, mlp_dim wide>`` + ``aggregator.linear``.
The Sinkhorn loop is written with concatenations instead of in-place writes so it traces to
ONNX; the arithmetic is the published one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import DinoViT, dinov2


def sinkhorn_log_probs(scores: torch.Tensor, dust_bin: torch.Tensor, iters: int = 3):
    """log transport plan between m clusters + a dustbin row and n tokens (uniform marginals,
    the dustbin taking the n-m surplus), plus log(n+m), as in SALAD."""
    _, m, n = scores.shape
    s = torch.cat([scores, dust_bin * torch.ones_like(scores[:, :1])], dim=1)
    norm = -math.log(n + m)
    # marginals as (1, .) rows that broadcast over the batch (keeps the ONNX batch dynamic)
    log_a = torch.full((1, m + 1), norm, dtype=scores.dtype)
    log_a[0, -1] = norm + math.log(n - m)
    log_b = torch.full((1, n), norm, dtype=scores.dtype)
    v = torch.zeros_like(log_b)
    u = log_a
    for _ in range(iters):
        u = log_a - torch.logsumexp(s + v.unsqueeze(1), dim=2)
        v = log_b - torch.logsumexp(s + u.unsqueeze(2), dim=1)
    return s + u.unsqueeze(2) + v.unsqueeze(1) - norm


class OTAggregator(nn.Module):
    def __init__(
        self,
        num_channels: int = 768,
        num_clusters: int = 64,
        cluster_dim: int = 128,
        token_dim: int = 256,
        mlp_dim: int = 512,
    ) -> None:
        super().__init__()
        self.num_clusters, self.cluster_dim = num_clusters, cluster_dim
        self.token_features = nn.Sequential(
            nn.Linear(num_channels, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, token_dim)
        )
        self.cluster_features = nn.Sequential(
            nn.Conv2d(num_channels, mlp_dim, 1),
            nn.Identity(),  # dropout at training time
            nn.ReLU(),
            nn.Conv2d(mlp_dim, cluster_dim, 1),
        )
        self.score = nn.Sequential(
            nn.Conv2d(num_channels, mlp_dim, 1),
            nn.Identity(),
            nn.ReLU(),
            nn.Conv2d(mlp_dim, num_clusters, 1),
        )
        self.dust_bin = nn.Parameter(torch.tensor(1.0))

    def forward(self, feats: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        f = self.cluster_features(feats).flatten(2)  # B, l, n
        p = torch.exp(sinkhorn_log_probs(self.score(feats).flatten(2), self.dust_bin))[:, :-1]
        agg = torch.einsum("bln,bmn->blm", f, p)  # sum over tokens of f * p
        return F.normalize(
            torch.cat(
                [
                    F.normalize(self.token_features(token), p=2, dim=-1),
                    F.normalize(agg, p=2, dim=1).flatten(1),
                ],
                dim=-1,
            ),
            p=2,
            dim=-1,
        )


class SaladBackbone(nn.Module):
    def __init__(self, **vit) -> None:
        super().__init__()
        self.model = dinov2("dinov2_vitb14", **vit)


class Salad(nn.Module):
    def __init__(self, num_clusters: int = 64, cluster_dim: int = 128, token_dim: int = 256, **vit):
        super().__init__()
        self.backbone = SaladBackbone(**vit)
        self.aggregator = OTAggregator(
            self.backbone.model.embed_dim, num_clusters, cluster_dim, token_dim, 512
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit: DinoViT = self.backbone.model
        tokens = vit(x, final_norm=True)
        return self.aggregator(vit.feature_map(tokens, *x.shape[-2:]), tokens[:, 0])


class MegaLocAggregator(nn.Module):
    def __init__(self, channels: int, feat_dim: int, clusters: int, cluster_dim: int) -> None:
        super().__init__()
        self.agg = OTAggregator(channels, clusters, cluster_dim, 256, 512)
        self.linear = nn.Linear(clusters * cluster_dim + 256, feat_dim)


class MegaLoc(nn.Module):
    def __init__(
        self, feat_dim: int = 8448, num_clusters: int = 64, cluster_dim: int = 256, **vit
    ) -> None:
        super().__init__()
        self.backbone = dinov2("dinov2_vitb14", mask_token=False, **vit)
        self.aggregator = MegaLocAggregator(
            self.backbone.embed_dim, feat_dim, num_clusters, cluster_dim
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(x, final_norm=True)
        f = self.backbone.feature_map(tokens, *x.shape[-2:])
        out = self.aggregator.linear(self.aggregator.agg(f, tokens[:, 0]))
        return F.normalize(out, p=2, dim=1)
