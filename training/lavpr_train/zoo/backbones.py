"""Backbones in the exact parameter layouts the published VPR checkpoints were saved from.

ResNet/VGG come from torchvision (the official projects build them from torchvision too, so
the key names are torchvision's); the DINOv2 ViT is written here with the attribute names of
facebookresearch/dinov2's torch.hub models (``cls_token``, ``pos_embed``, ``mask_token``,
``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,
ls2.gamma}``, ``norm``) so their state_dicts load without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

RESNETS = ("resnet18", "resnet50", "resnet101", "resnet152")
# DINOv2 hub variants: embed_dim, depth, heads (patch 14, image 518 -> 37x37 position grid).
DINOV2 = {
    "dinov2_vits14": (384, 12, 6),
    "dinov2_vitb14": (768, 12, 12),
    "dinov2_vitl14": (1024, 24, 16),
}


def resnet_layers(name: str, crop_layer4: bool = False) -> list[nn.Module]:
    """conv1, bn1, relu, maxpool, layer1..layer4 (without layer4 when cropped), random init."""
    name = name.lower()
    if name not in RESNETS:
        raise ValueError(f"unknown ResNet {name!r} (known: {', '.join(RESNETS)})")
    net = getattr(torchvision.models, name)(weights=None)
    layers = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3]
    return layers if crop_layer4 else [*layers, net.layer4]


def resnet_channels(name: str, crop_layer4: bool = False) -> int:
    c = 512 if name.lower() == "resnet18" else 2048
    return c // 2 if crop_layer4 else c


def vgg16_layers() -> list[nn.Module]:
    """VGG16 ``features`` without the last ReLU and max-pool (CosPlace/EigenPlaces)."""
    return list(torchvision.models.vgg16(weights=None).features.children())[:-2]


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoViT(nn.Module):
    """DINOv2 ViT/14 trunk; ``forward`` returns all tokens (CLS first) after the blocks.

    Position embeddings are resized like DINOv2 (bicubic, scale factor (n+0.1)/M). For the
    ONNX graph the input size is fixed, so :meth:`freeze_input_size` computes that resize once
    with torch and stores it (the exported graph then holds no bicubic Resize op, whose ONNX
    semantics differ from torch's)."""

    def __init__(
        self, embed_dim: int, depth: int, heads: int, grid: int = 37, mask_token: bool = True
    ) -> None:
        super().__init__()
        self.patch = 14
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(self.patch, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        if mask_token:  # in the hub checkpoints, unused at inference
            self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._frozen: dict[tuple[int, int], torch.Tensor] = {}

    def resized_pos_embed(self, h: int, w: int) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        h0, w0 = h // self.patch, w // self.patch
        if h0 * w0 == n and h == w:
            return self.pos_embed
        m = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid, scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic", antialias=False
        )
        if tuple(grid.shape[-2:]) != (h0, w0):
            raise ValueError(f"position grid resized to {tuple(grid.shape[-2:])}, not {(h0, w0)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
        return torch.cat([self.pos_embed[:, :1], grid], dim=1)

    def freeze_input_size(self, h: int, w: int) -> None:
        with torch.no_grad():
            self._frozen[(h, w)] = self.resized_pos_embed(h, w).detach().clone()

    def forward(self, x: torch.Tensor, final_norm: bool = True) -> torch.Tensor:
        b, _, h, w = x.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"DINOv2 input {h}x{w} is not a multiple of {self.patch}")
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(x)], dim=1)
        pos = self._frozen.get((int(h), int(w)))  # ints also while tracing
        tokens = tokens + (pos if pos is not None else self.resized_pos_embed(h, w))
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens) if final_norm else tokens

    def feature_map(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Patch tokens -> [B, C, H/14, W/14]."""
        b = tokens.shape[0]
        return tokens[:, 1:].reshape(b, h // self.patch, w // self.patch, -1).permute(0, 3, 1, 2)


def dinov2(size: str, depth: int | None = None, embed_dim: int | None = None, **kw) -> DinoViT:
    """A hub DINOv2 layout; ``depth``/``embed_dim`` override for small test variants."""
    if size not in DINOV2:
        raise ValueError(f"unknown DINOv2 {size!r} (known: {', '.join(DINOV2)})")
    d, n, _ = DINOV2[size]  # heads = width / 64 in every DINOv2 size
    d = embed_dim or d
    return DinoViT(d, depth or n, max(1, d // 64), **kw)
