"""core/fusion.py with small fusion models built here as ONNX graphs (no torch), and
``lavpr eval-images --mode fusion`` on Corridor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lavpr_ros.core.fusion import FusionModel, FusionModelError, fuse_weighted
from lavpr_ros.core.manifest import ModelManifest, sha256_file

REPO = Path(__file__).resolve().parents[2]
DESC = REPO / "evaluation" / "descriptions"


def make_fusion(
    folder: Path,
    mode: str,
    image_dim: int,
    text_dim: int,
    weight: np.ndarray,
    bias: np.ndarray,
    image_model_id: str = "img",
    text_model_id: str = "txt",
) -> Path:
    """[image; text] @ weight + bias, softmax for dynamic/fixed (fixed: weight = 0)."""
    out_name = "fused" if mode == "concat" else "weights"
    out_dim = weight.shape[1]
    nodes = [
        helper.make_node("Concat", ["image", "text"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits" if mode != "concat" else out_name]),
    ]
    if mode != "concat":
        nodes.append(helper.make_node("Softmax", ["logits"], [out_name], axis=1))
    graph = helper.make_graph(
        nodes,
        "fusion",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", image_dim]),
            helper.make_tensor_value_info("text", TensorProto.FLOAT, ["batch", text_dim]),
        ],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", out_dim])],
        [
            numpy_helper.from_array(weight.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    ModelManifest(
        model_id=f"fusion-{mode}",
        kind="fusion",
        file="model.onnx",
        sha256=sha256_file(folder / "model.onnx"),
        output_dim=out_dim,
        input_name="image",
        output_name=out_name,
        extra={
            "mode": mode,
            "image_dim": image_dim,
            "text_dim": text_dim,
            "image_model_id": image_model_id,
            "text_model_id": text_model_id,
        },
        directory=folder,
    ).save(folder)
    return folder / "manifest.yaml"


def _unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_dynamic_weights_and_fused_scores(tmp_path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8 + 4, 2))
    fm = FusionModel(make_fusion(tmp_path / "m", "dynamic", 8, 4, w, np.zeros(2)))
    qi, qt, ci, ct = _unit(rng, 1, 8), _unit(rng, 1, 4), _unit(rng, 5, 8), _unit(rng, 5, 4)
    weights = fm.weights(qi, qt)[0]
    logits = np.concatenate([qi, qt], 1)[0] @ w
    expect = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(weights, expect, rtol=1e-5)
    has = np.array([True, True, False, True, True])
    res = fm.scores(qi[0], qt[0], ci, ct, has)
    s_img, s_txt = ci @ qi[0], ct @ qt[0]
    want = expect[0] * s_img + expect[1] * s_txt
    np.testing.assert_allclose(res.score[has], want[has], rtol=1e-5, atol=1e-6)
    assert res.score[2] == pytest.approx(s_img[2])  # no description: image only
    assert np.isnan(res.text[2]) and res.weights == pytest.approx(tuple(expect))


def test_fixed_weights_select_one_modality(tmp_path) -> None:
    rng = np.random.default_rng(1)
    image_only = FusionModel(
        make_fusion(tmp_path / "i", "fixed", 8, 4, np.zeros((12, 2)), np.array([30.0, 0.0]))
    )
    qi, qt, ci, ct = _unit(rng, 1, 8), _unit(rng, 1, 4), _unit(rng, 6, 8), _unit(rng, 6, 4)
    res = image_only.scores(qi, qt, ci, ct)
    np.testing.assert_allclose(res.score, ci @ qi[0], atol=1e-6)
    text_only = FusionModel(
        make_fusion(tmp_path / "t", "fixed", 8, 4, np.zeros((12, 2)), np.array([0.0, 30.0]))
    )
    np.testing.assert_allclose(text_only.scores(qi, qt, ci, ct).score, ct @ qt[0], atol=1e-6)


def test_concat_scores_are_cosines_of_fused_descriptors(tmp_path) -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(12, 6))
    fm = FusionModel(make_fusion(tmp_path / "c", "concat", 8, 4, w, np.zeros(6)))
    qi, qt, ci, ct = _unit(rng, 1, 8), _unit(rng, 1, 4), _unit(rng, 3, 8), _unit(rng, 3, 4)
    ct[1] = 0.0  # undescribed
    f = lambda i, t: (lambda v: v / np.linalg.norm(v, axis=1, keepdims=True))(  # noqa: E731
        np.concatenate([i, t], 1) @ w
    )
    want = f(ci, ct) @ f(qi, qt)[0]
    np.testing.assert_allclose(fm.scores(qi, qt, ci, ct).score, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(FusionModelError, match="no weights"):
        fm.weights(qi, qt)


def test_refusals(tmp_path) -> None:
    m = make_fusion(tmp_path / "m", "dynamic", 8, 4, np.zeros((12, 2)), np.zeros(2))
    fm = FusionModel(m)
    with pytest.raises(FusionModelError, match="trained on image model 'img'"):
        fm.check_models("other", "txt")
    fm.check_models("img", "txt")
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        fm.weights(np.ones((1, 7)), np.ones((1, 4)))
    assert fuse_weighted((1, 1), np.array([0.2]), np.array([0.6]), np.array([True]))[0] == (
        pytest.approx(0.4)
    )
    with pytest.raises(ValueError):
        fuse_weighted((0, 0), np.zeros(1), np.zeros(1), np.ones(1, bool))


def test_eval_images_fusion_mode_on_corridor(tmp_path, data_root, image_model, text_model):
    """Fixed (1, 0) fusion must reproduce image-only Recall; (0, 1) text-only Recall."""
    from lavpr_ros.cli.main import main
    from lavpr_ros.core.manifest import load_manifest

    img, txt = load_manifest(image_model), load_manifest(text_model)
    results = {}
    for name, bias in (("img", [30.0, 0.0]), ("txt", [0.0, 30.0])):
        dim = img.output_dim + txt.output_dim
        m = make_fusion(
            tmp_path / name,
            "fixed",
            img.output_dim,
            txt.output_dim,
            np.zeros((dim, 2)),
            np.array(bias),
            img.model_id,
            txt.model_id,
        )
        out = tmp_path / f"out-{name}"
        rc = main(
            [
                "eval-images",
                "--dataset",
                "corridor",
                "--mode",
                "fusion",
                "--quiet",
                "--encoder",
                str(image_model),
                "--text-model",
                str(text_model),
                "--fusion-model",
                str(m),
                "--descriptions",
                str(DESC / "corridor_ref.csv"),
                "--query-descriptions",
                str(DESC / "corridor_query.csv"),
                "--query-range",
                "55:111",
                "--out",
                str(out),
            ]
        )
        assert rc == 0
        results[name] = json.loads((out / "metrics.json").read_text())
    r = results["img"]
    assert r["num_queries_evaluated"] == 56
    assert r["fusion_recall@1"] == pytest.approx(r["image_recall@1"])
    assert r["image_recall@1"] > 0.5  # MobileNetV2-GeM on Corridor
    t = results["txt"]
    assert t["fusion_recall@1"] == pytest.approx(t["text_recall@1"])
    assert t["text_recall@1"] > 0.3  # hand-written descriptions: far above chance (~0.05)
