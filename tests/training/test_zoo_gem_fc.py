"""CosPlace and EigenPlaces: published-layout .pth with random weights -> import -> parity."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zoo_helpers import assert_parity, check_imported, random_state  # noqa: E402


@pytest.mark.parametrize(
    "name,backbone,dim", [("cosplace", "ResNet18", 512), ("eigenplaces", "ResNet18", 256)]
)
def test_import_parity(tmp_path, name, backbone, dim):
    opts = {"backbone": backbone, "dim": dim}
    ckpt = tmp_path / f"{backbone}_{dim}_{name}.pth"  # the published file name pattern
    torch.save(random_state(name, opts), ckpt)
    r = check_imported(name, opts, ckpt, tmp_path / name, size=(128, 160))
    assert_parity(r)
    m = r["manifest"]
    assert m["output_dim"] == dim and m["interpolation"] == "bilinear"
    assert m["extra"]["arch_options"] == opts
    assert len(m["extra"]["checkpoint_sha256"]) == 64
