"""Pose branch (1-D conv + bidirectional GRU over relative-motion features) and text head.

The text side is the *frozen* all-MiniLM-L6-v2 sentence embedding (384-d, computed with the
runtime's exported ``models/minilm-l6-v2``), followed by a trained projection head; only the pose
branch and the head are exported (two small ONNX files), so the robot reuses the text encoder it
already runs for text_nav.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PoseTextConfig:
    features: int = 6
    steps: int = 40
    conv: int = 64
    hidden: int = 96
    text_dim: int = 384
    dim: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


class PoseEncoder(nn.Module):
    def __init__(self, cfg: PoseTextConfig) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.features, cfg.conv, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(cfg.conv, cfg.conv, 5, padding=2),
            nn.ReLU(),
        )
        self.gru = nn.GRU(cfg.conv, cfg.hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * cfg.hidden, cfg.dim)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        h = self.conv(poses.transpose(1, 2)).transpose(1, 2)
        _, last = self.gru(h)  # (2, B, hidden)
        z = torch.cat([last[0], last[1]], dim=-1)
        return F.normalize(self.proj(z), dim=-1)


class TextHead(nn.Module):
    def __init__(self, cfg: PoseTextConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim)
        )

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(text), dim=-1)


class PoseTextModel(nn.Module):
    def __init__(self, cfg: PoseTextConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pose = PoseEncoder(cfg)
        self.text = TextHead(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07)


def multi_positive_infonce(
    pose: torch.Tensor, text: torch.Tensor, positives: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where ``positives[i, j]`` says caption i fits window j (the diagonal is
    always positive; other windows with the same described manoeuvres are not negatives)."""
    logits = logit_scale.clamp(max=4.6052).exp() * text @ pose.T  # (B texts, B windows)
    pos = positives.float()

    def side(lg: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        logp = lg.log_softmax(dim=1)
        return -((logp * p).sum(1) / p.sum(1)).mean()

    return 0.5 * (side(logits, pos) + side(logits.T, pos.T))
