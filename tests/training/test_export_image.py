"""Image export on small randomly initialised configs (fast): ONNX parity, manifest, runtime."""

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from lavpr_train.data import IMAGENET_MEAN, IMAGENET_STD, preprocess  # noqa: E402
from lavpr_train.export.image import export_image_model, sample_images  # noqa: E402
from lavpr_train.export.manifest import sha256_file  # noqa: E402
from lavpr_train.models import ModelConfig, VPRModel  # noqa: E402

SIZE = (64, 64)


@pytest.fixture(scope="module", params=[None, 32], ids=["gem", "gem+head"])
def exported(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    cfg = ModelConfig(head_dim=request.param)
    torch.manual_seed(0)
    folder = export_image_model(
        out, model_id="tiny-test", cfg=cfg, weights=None, input_size=SIZE, parity_images=4
    )
    torch.manual_seed(0)  # same seed -> same random weights as the exported model
    model = VPRModel(cfg, weights=None).eval()
    return folder, model, cfg


def test_export_writes_model_and_manifest(exported):
    folder, _, cfg = exported
    m = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert m["format_version"] == 1 and m["kind"] == "image"
    assert m["model_id"] == "tiny-test" and m["file"] == "model.onnx"
    assert m["sha256"] == sha256_file(folder / "model.onnx")
    assert m["output_dim"] == (cfg.head_dim or 1280)
    assert m["input_name"] == "images" and m["output_name"] == "descriptors"
    assert m["input_size"] == list(SIZE) and m["input_layout"] == "NCHW"
    assert m["mean"] == list(IMAGENET_MEAN) and m["std"] == list(IMAGENET_STD)
    assert m["extra"]["parity_max_abs_error"] <= 1e-4
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())  # no staging left


def test_onnx_graph_has_dynamic_batch_and_opset17(exported):
    import onnx

    folder, _, _ = exported
    g = onnx.load(str(folder / "model.onnx"))
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in g.opset_import)
    dim0 = g.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value
    assert [i.name for i in g.graph.input] == ["images"]
    assert [o.name for o in g.graph.output] == ["descriptors"]


def test_onnxruntime_matches_torch(exported):
    import onnxruntime as ort

    folder, model, _ = exported
    images, _ = sample_images(5)
    batch = preprocess(images, SIZE)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["descriptors"], {"images": batch})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(batch)).numpy()
    assert np.abs(got - want).max() <= 1e-4


def test_manifest_round_trip_through_runtime_encoder(exported):
    encoders = pytest.importorskip(
        "lavpr_ros.core.encoders", reason="runtime package src/lavpr_ros not importable"
    )
    from lavpr_ros.core.manifest import load_manifest, verify_checksum

    folder, model, cfg = exported
    man = load_manifest(folder / "manifest.yaml")
    assert verify_checksum(man) == (folder / "model.onnx").resolve()
    enc = encoders.OnnxEncoder(folder / "manifest.yaml", providers=["CPUExecutionProvider"])
    assert enc.model_id == "tiny-test" and enc.dim == (cfg.head_dim or 1280)
    images, _ = sample_images(4)
    got = enc.encode(images)
    with torch.no_grad():
        want = model(torch.from_numpy(preprocess(images, SIZE))).numpy()
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    assert enc.encode([]).shape == (0, enc.dim)


def test_existing_export_needs_force(exported):
    folder, _, cfg = exported
    with pytest.raises(FileExistsError):
        export_image_model(
            folder.parent, model_id="tiny-test", cfg=cfg, weights=None, input_size=SIZE
        )
