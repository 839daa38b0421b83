"""SeqNet: a temporal 1-D convolution over L single-frame descriptors -> one sequence descriptor.

``SeqNet(x)`` with ``x`` (B, L, D) runs ``Conv1d(D, C, kernel)`` along time, giving T' = L - kernel
+ 1 per-step features f_t (B, T', C). The exported sequence descriptor depends on the distance the
model was trained with, so that nearest-neighbour search at run time ranks exactly as the loss did:

* ``seqdesc`` (SeqNet): g = L2(mean_t f_t); distance ||g_q - g_r||.
* ``meanOfPairs`` (SeqMatchNet): g = concat_t L2(f_t) / sqrt(T'); then
  ||g_q - g_r||^2 = mean_t ||L2(f_t^q) - L2(f_t^r)||^2, the mean of the per-pair (aligned step)
  squared distances, i.e. the sequence-matching score of SeqMatchNet over the learnt features.
* ``centerOnly`` (SeqMatchNet): g = L2(f_c), the centre step only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("seqdesc", "meanOfPairs", "centerOnly")


@dataclass
class SeqNetConfig:
    frame_dim: int = 2048
    seq_len: int = 10
    kernel: int = 5
    channels: int = 128
    mode: str = "meanOfPairs"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 1 <= self.kernel <= self.seq_len:
            raise ValueError(f"kernel {self.kernel} must be in 1..seq_len ({self.seq_len})")

    @property
    def steps(self) -> int:
        return self.seq_len - self.kernel + 1

    @property
    def output_dim(self) -> int:
        return self.channels * self.steps if self.mode == "meanOfPairs" else self.channels

    def to_dict(self) -> dict:
        return asdict(self)


class SeqNet(nn.Module):
    def __init__(self, cfg: SeqNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Conv1d(cfg.frame_dim, cfg.channels, cfg.kernel)

    def steps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> per-step features (B, T', C)."""
        return self.conv(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.steps(x)
        mode = self.cfg.mode
        if mode == "seqdesc":
            return F.normalize(f.mean(dim=1), dim=-1)
        if mode == "centerOnly":
            return F.normalize(f[:, f.shape[1] // 2], dim=-1)
        g = F.normalize(f, dim=-1) / math.sqrt(f.shape[1])
        return g.reshape(g.shape[0], -1)
