"""Bag-of-Queries (Ali-bey et al., CVPR 2024): learned queries cross-attending backbone tokens.

Published state_dicts: ``backbone.net.<0,1,4,5,6>`` (ResNet50 through layer3) or
``backbone.dino.<hub DINOv2>`` (patch tokens, no final norm) and ``aggregator.{proj_c,
norm_input,boqs.<i>.{encoder,queries,self_attn,norm_q,cross_attn,norm_out},fc}``; the encoder
and attentions are torch's own TransformerEncoderLayer / MultiheadAttention modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import dinov2, resnet_channels, resnet_layers


class ResNetNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*resnet_layers("resnet50", crop_layer4=True))
        self.out_channels = resnet_channels("resnet50", crop_layer4=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DinoNet(nn.Module):
    def __init__(self, **vit) -> None:
        super().__init__()
        self.dino = dinov2("dinov2_vitb14", **vit)
        self.out_channels = self.dino.embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.dino.feature_map(self.dino(x, final_norm=False), h, w)


class BoQBlock(nn.Module):
    def __init__(self, dim: int, num_queries: int, heads: int) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            d_model=dim, nhead=heads, dim_feedforward=4 * dim, batch_first=True, dropout=0.0
        )
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim))
        self.self_attn = nn.MultiheadAttention(dim, num_heads=heads, batch_first=True)
        self.norm_q = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads=heads, batch_first=True)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.encoder(x)
        q = self.queries.repeat(x.shape[0], 1, 1)
        q = self.norm_q(q + self.self_attn(q, q, q, need_weights=False)[0])
        return x, self.norm_out(self.cross_attn(q, x, x, need_weights=False)[0])


class BoQHead(nn.Module):
    def __init__(
        self, in_channels: int, proj_channels: int, num_queries: int, num_layers: int, row_dim: int
    ) -> None:
        super().__init__()
        self.proj_c = nn.Conv2d(in_channels, proj_channels, kernel_size=3, padding=1)
        self.norm_input = nn.LayerNorm(proj_channels)
        heads = proj_channels // 64
        self.boqs = nn.ModuleList(
            BoQBlock(proj_channels, num_queries, heads) for _ in range(num_layers)
        )
        self.fc = nn.Linear(num_layers * num_queries, row_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_input(self.proj_c(x).flatten(2).permute(0, 2, 1))
        outs = []
        for blk in self.boqs:
            x, out = blk(x)
            outs.append(out)
        out = self.fc(torch.cat(outs, dim=1).permute(0, 2, 1)).flatten(1)
        return F.normalize(out, p=2, dim=-1)


class BoQ(nn.Module):
    def __init__(self, backbone: str = "resnet50", output_dim: int | None = None, **vit) -> None:
        super().__init__()
        if backbone == "resnet50":
            self.backbone: nn.Module = ResNetNet()
            proj = 512
        elif backbone == "dinov2":
            self.backbone = DinoNet(**vit)
            proj = 384
        else:
            raise ValueError(f"BoQ backbone must be resnet50 or dinov2, not {backbone!r}")
        output_dim = output_dim or 32 * proj
        if output_dim % proj:
            raise ValueError(f"BoQ output_dim {output_dim} is not a multiple of {proj}")
        self.aggregator = BoQHead(self.backbone.out_channels, proj, 64, 2, output_dim // proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aggregator(self.backbone(x))
