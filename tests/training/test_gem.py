import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

from lavpr_train.models import GeM  # noqa: E402


def test_gem_p3_matches_formula():
    torch.manual_seed(0)
    x = torch.rand(2, 5, 4, 3) + 0.01
    got = GeM(p=3.0)(x)
    want = (x.pow(3).mean(dim=(2, 3))).pow(1 / 3)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_gem_p1_is_average_and_large_p_approaches_max():
    x = torch.rand(3, 4, 5, 5) + 0.05
    torch.testing.assert_close(GeM(p=1.0)(x), x.mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)
    big = GeM(p=64.0)(x)
    assert torch.all(big <= x.amax(dim=(2, 3)) + 1e-5)
    assert torch.all(big >= 0.9 * x.amax(dim=(2, 3)))


def test_gem_eps_clamps_zeros_and_negatives():
    x = torch.zeros(1, 2, 3, 3)
    x[0, 1] = -1.0
    out = GeM(p=3.0, eps=1e-6)(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full((1, 2), 1e-6), rtol=1e-4, atol=0.0)


def test_gem_p_is_learnable():
    gem = GeM(p=3.0)
    x = torch.rand(2, 3, 4, 4) + 0.1
    x[0, 0, 0, 0] = 5.0
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0
    assert GeM(learn_p=False).p.requires_grad is False


def test_vpr_model_outputs_are_unit_norm():
    from lavpr_train.models import ModelConfig, VPRModel

    torch.manual_seed(0)
    for head in (None, 64):
        m = VPRModel(ModelConfig(head_dim=head), weights=None).eval()
        with torch.no_grad():
            y = m(torch.randn(2, 3, 64, 64))
        assert y.shape == (2, head or 1280)
        torch.testing.assert_close(y.norm(dim=1), torch.ones(2))


def test_missing_weights_file_is_a_clear_error(tmp_path):
    from lavpr_train.models import WeightsNotFoundError, build_backbone

    with pytest.raises(WeightsNotFoundError, match="not found"):
        build_backbone("mobilenetv2", tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg", None)
