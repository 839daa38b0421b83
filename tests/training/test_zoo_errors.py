"""Wrong inputs to import-model get clear errors and leave no model folder behind."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zoo_helpers import random_state  # noqa: E402

from lavpr_train.zoo.checkpoint import CheckpointError  # noqa: E402
from lavpr_train.zoo.importer import import_model  # noqa: E402

SMALL = {"vit_depth": 2, "vit_dim": 64}


@pytest.fixture(scope="module")
def salad_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "dino_salad.ckpt"
    torch.save(random_state("salad", SMALL), path)
    return path


def test_other_arch_names_missing_and_unexpected_keys(tmp_path, salad_ckpt):
    with pytest.raises(CheckpointError) as exc:
        import_model("megaloc", salad_ckpt, tmp_path / "m", SMALL)
    msg = str(exc.value)
    assert "missing" in msg and "unexpected" in msg
    assert "aggregator.linear.* (2)" in msg  # missing
    assert "backbone.model.* (" in msg  # unexpected
    assert not (tmp_path / "m").exists()


def test_options_not_matching_shapes(tmp_path):
    ckpt = tmp_path / "ResNet18_512_cosplace.pth"
    torch.save(random_state("cosplace", {"backbone": "ResNet18", "dim": 512}), ckpt)
    with pytest.raises(CheckpointError, match=r"aggregation.3.weight checkpoint \[512, 512\]"):
        import_model("cosplace", ckpt, tmp_path / "m", {"backbone": "ResNet18", "dim": 256})
    with pytest.raises(CheckpointError, match="missing"):  # ResNet50 has bottleneck blocks
        import_model("cosplace", ckpt, tmp_path / "m", {"backbone": "ResNet50", "dim": 512})


def test_mixvpr_input_size_must_match_mixer(tmp_path):
    ckpt = tmp_path / "mixvpr.ckpt"
    torch.save({"state_dict": random_state("mixvpr", {"input_size": (128, 160)})}, ckpt)
    with pytest.raises(
        CheckpointError, match=r"aggregator.mix.0.mix.0.weight checkpoint \[80\] vs model \[400\]"
    ):
        import_model("mixvpr", ckpt, tmp_path / "m", {}, (320, 320))


def test_truncated_and_empty_files(tmp_path, salad_ckpt):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(salad_ckpt.read_bytes()[: salad_ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        import_model("salad", cut, tmp_path / "m", SMALL)
    st = tmp_path / "model.safetensors"
    st.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(CheckpointError, match="truncated"):
        import_model("megaloc", st, tmp_path / "m", SMALL)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        import_model("salad", empty, tmp_path / "m", SMALL)
    assert not (tmp_path / "m").exists()


def test_unknown_arch_and_option(tmp_path, salad_ckpt):
    with pytest.raises(ValueError, match="unknown arch"):
        import_model("netvlad", salad_ckpt, tmp_path / "m")
    with pytest.raises(ValueError, match="unknown options"):
        import_model("salad", salad_ckpt, tmp_path / "m", {"clusters": 3})
