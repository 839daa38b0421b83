"""SALAD (raw state_dict in a .ckpt, as its torch.hub loader reads it) and MegaLoc
(safetensors) -> import -> parity. DINOv2 trunk: 2 blocks of width 64; MegaLoc's final
linear 256-d instead of 8448-d (same key names)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import save_file  # noqa: E402
from zoo_helpers import assert_parity, check_imported, random_state  # noqa: E402

SMALL = {"vit_depth": 2, "vit_dim": 64}


def test_salad_ckpt(tmp_path):
    ckpt = tmp_path / "dino_salad.ckpt"
    torch.save(random_state("salad", SMALL), ckpt)
    r = check_imported("salad", SMALL, ckpt, tmp_path / "salad")
    assert_parity(r)
    assert r["manifest"]["output_dim"] == 64 * 128 + 256
    assert r["manifest"]["input_size"] == [322, 322]


def test_megaloc_safetensors(tmp_path):
    opts = {**SMALL, "dim": 256}
    ckpt = tmp_path / "model.safetensors"
    save_file(random_state("megaloc", opts), str(ckpt))
    r = check_imported("megaloc", opts, ckpt, tmp_path / "megaloc")
    assert_parity(r)
    assert r["manifest"]["output_dim"] == 256
