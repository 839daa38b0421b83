"""Projection heads applied to the (L2-normalised) aggregated descriptor."""

from __future__ import annotations

from torch import nn


class ProjectionHead(nn.Module):
    """``dim -> dim/2 -> out_dim`` MLP with BatchNorm, ReLU and dropout (output not normalised;
    :class:`~lavpr_train.models.vpr.VPRModel` L2-normalises it)."""

    def __init__(self, in_dim: int, out_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = in_dim // 2
        self.in_dim, self.out_dim = in_dim, out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x):
        return self.net(x)
