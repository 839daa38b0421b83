"""BoQ: published state_dict layouts for the ResNet50 and the DINOv2 backbone -> import ->
parity (bicubic resize as BoQ's evaluation). DINOv2 trunk: 2 blocks of width 64 (same key
names as ViT-B/14)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zoo_helpers import assert_parity, check_imported, random_state  # noqa: E402


@pytest.mark.parametrize(
    "opts,size",
    [
        ({"backbone": "resnet50"}, (128, 160)),
        ({"backbone": "dinov2", "vit_depth": 2, "vit_dim": 64}, None),
    ],
    ids=["resnet50", "dinov2-small"],
)
def test_import_parity(tmp_path, opts, size):
    ckpt = tmp_path / "boq.pth"
    torch.save(random_state("boq", opts), ckpt)
    r = check_imported("boq", opts, ckpt, tmp_path / "boq", size)
    assert_parity(r)
    m = r["manifest"]
    assert m["interpolation"] == "bicubic"
    assert m["output_dim"] == (16384 if opts["backbone"] == "resnet50" else 12288)
    if size is None:
        assert m["input_size"] == [322, 322]
