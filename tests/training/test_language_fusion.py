"""lang-fusion: the three fusion heads export to ONNX with parity, and the runtime's
FusionModel gives the scores the torch module was trained with."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lavpr_train.language.common import info_nce  # noqa: E402
from lavpr_train.language.fusion import FusionNet, export_fusion  # noqa: E402


def _unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("mode", ["dynamic", "fixed", "concat"])
def test_export_parity_and_runtime_scores(mode, tmp_path) -> None:
    from lavpr_ros.core.fusion import FusionModel

    torch.manual_seed(0)
    net = FusionNet(16, 8, mode, hidden=12, out_dim=6).eval()
    with torch.no_grad():  # not the (0.5, 0.5) start
        for p in net.parameters():
            p.normal_(0, 0.5)
    err = export_fusion(net, tmp_path, f"f-{mode}", "img", "txt")
    assert err < 1e-5
    fm = FusionModel(tmp_path / f"f-{mode}")
    assert fm.mode == mode and fm.image_model_id == "img"
    rng = np.random.default_rng(0)
    qi, qt, ci, ct = _unit(rng, 1, 16), _unit(rng, 1, 8), _unit(rng, 5, 16), _unit(rng, 5, 8)
    has = np.array([True, False, True, True, True])
    got = fm.scores(qi, qt, ci, ct, has).score
    with torch.no_grad():
        want = net.scores(*(torch.from_numpy(a) for a in (qi, qt, ci, ct, has))).numpy()[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_dynamic_weighting_learns_to_trust_text_when_images_fail() -> None:
    """Synthetic: half the queries have a useless image (and a flag in it), all have good text;
    trained weights must move towards text for those and recall must beat image-only."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, di, dt = 40, 16, 8
    ci, ct = _unit(rng, n, di), _unit(rng, n, dt)
    qi = ci + 0.1 * rng.normal(size=ci.shape).astype(np.float32)
    bad = np.arange(n) % 2 == 1
    qi[bad] = rng.normal(size=(bad.sum(), di)).astype(np.float32)
    qi[bad, 0] = 5.0  # what a degradation does to a descriptor: a recognisable shift
    qi /= np.linalg.norm(qi, axis=1, keepdims=True)
    qt = ct + 0.3 * rng.normal(size=ct.shape).astype(np.float32)
    qt /= np.linalg.norm(qt, axis=1, keepdims=True)
    net = FusionNet(di, dt, "dynamic", hidden=16)
    t = [torch.from_numpy(a) for a in (qi, qt, ci, ct)]
    has, pos = torch.ones(n, dtype=torch.bool), torch.eye(n, dtype=torch.bool)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        loss = info_nce(net.scores(*t, has), pos, 0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w = net(t[0], t[1]).numpy()
        fused_r1 = (net.scores(*t, has).argmax(1).numpy() == np.arange(n)).mean()
    image_r1 = ((qi @ ci.T).argmax(1) == np.arange(n)).mean()
    assert w[bad, 1].mean() > w[~bad, 1].mean() + 0.2
    assert fused_r1 > image_r1 + 0.2
