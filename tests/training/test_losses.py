import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

import torch.nn.functional as F  # noqa: E402

from lavpr_train.losses import (  # noqa: E402
    batch_hard_triplet,
    multi_positive_info_nce,
    place_masks,
)


def test_place_masks_tolerance_and_ignore_band():
    pos, neg = place_masks(torch.tensor([10, 11, 13, 20]), pos_radius=1, ignore_radius=3)
    assert pos[0, 1] and pos[1, 0] and not pos[0, 0]
    assert not pos[0, 2] and not neg[0, 2]  # 3 frames apart: ignored
    assert neg[0, 3] and not pos[0, 3]


def test_losses_prefer_correct_structure():
    frames = torch.tensor([0, 0, 10, 10, 20, 20])
    pos, neg = place_masks(frames)
    good = F.normalize(torch.eye(3).repeat_interleave(2, 0) + 0.01 * torch.randn(6, 3), dim=1)
    bad = F.normalize(torch.randn(6, 3), dim=1)
    for loss in (multi_positive_info_nce, batch_hard_triplet):
        assert loss(good @ good.T, pos, neg) < loss(bad @ bad.T, pos, neg)
    assert batch_hard_triplet(good @ good.T, pos, neg, margin=0.1).item() == 0.0
