"""MixVPR: the published Lightning checkpoint layout (weights under ``state_dict``, with
Lightning's bookkeeping and hyper-parameters next to them) -> import -> parity. The mixer is
built for 128x160 inputs here (the official 320x320 costs ~4x more CPU time)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zoo_helpers import assert_parity, check_imported, random_state  # noqa: E402


def test_lightning_checkpoint_import_parity(tmp_path):
    opts = {"dim": 4096, "input_size": (128, 160)}
    ckpt = tmp_path / "resnet50_MixVPR_4096_channels(1024)_rows(4).ckpt"
    torch.save(
        {
            "epoch": 3,
            "global_step": 1000,
            "pytorch-lightning_version": "1.8.6",
            "state_dict": random_state("mixvpr", opts),
            "hyper_parameters": {"agg_arch": "MixVPR", "agg_config": {"in_h": 20}},
        },
        ckpt,
    )
    r = check_imported("mixvpr", opts, ckpt, tmp_path / "mixvpr", size=(128, 160))
    assert_parity(r)
    assert r["manifest"]["output_dim"] == 4096
    assert r["manifest"]["input_size"] == [128, 160]
