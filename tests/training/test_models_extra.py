"""Backbones, aggregators and progressive unfreezing (tiny random configs)."""

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

from lavpr_train.models import ModelConfig, VPRModel  # noqa: E402
from lavpr_train.models.backbones import (  # noqa: E402
    WeightsNotFoundError,
    build_backbone,
    set_trainable_blocks,
)

TINY_DINO = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=56,
    patch_size=14,
)


@pytest.mark.parametrize(
    ("aggregator", "args", "dim"),
    [
        ("gem", {}, 1280),
        ("mixvpr", {"out_channels": 32, "out_rows": 2}, 64),
        ("netvlad", {"clusters": 4}, 4 * 1280),
    ],
)
def test_aggregators(aggregator, args, dim):
    torch.manual_seed(0)
    cfg = ModelConfig(aggregator=aggregator, aggregator_args=args, input_size=(64, 64))
    m = VPRModel(cfg, weights=None).eval()
    z = m(torch.randn(3, 3, 64, 64))
    assert z.shape == (3, dim) and m.output_dim == dim
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)


def test_dinov2_tiny_random_and_missing_weights_message(tmp_path):
    cfg = ModelConfig(
        backbone="dinov2", backbone_config=TINY_DINO, input_size=(56, 56), head_dim=16
    )
    m = VPRModel(cfg, weights=None).eval()
    assert m(torch.randn(2, 3, 56, 56)).shape == (2, 16)
    assert len(m.backbone.blocks) == 4
    with pytest.raises(WeightsNotFoundError, match="not found locally"):
        build_backbone("dinov2", tmp_path / "nope")


@pytest.mark.parametrize("name", ["resnet50", "convnext_tiny"])
def test_torchvision_backbones_random_init(name, tmp_path):
    net, c = build_backbone(name, "default")  # no bundled weights: random init
    assert c in (2048, 768) and len(net.blocks) >= 5
    with pytest.raises(WeightsNotFoundError):
        build_backbone(name, tmp_path / "missing.pth")


def test_timm_is_optional():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs timm"):
            build_backbone("timm:resnet18")


def test_progressive_unfreezing():
    net, _ = build_backbone("mobilenetv2", None)
    assert set_trainable_blocks(net, 0) == 0
    two = set_trainable_blocks(net, 2)
    last2 = sum(p.numel() for b in net.blocks[-2:] for p in b.parameters())
    assert two == last2 > 0
    assert not any(p.requires_grad for p in net.blocks[0].parameters())
    assert set_trainable_blocks(net, -1) == sum(p.numel() for p in net.parameters())
