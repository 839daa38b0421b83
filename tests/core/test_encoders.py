"""Encoders: ONNX models built here with onnx.helper, preprocessing parity, refusals, providers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from lavpr_ros.core.encoders import (
    Encoder,
    ModelLoadError,
    OnnxEncoder,
    TensorRTEncoder,
    create_encoder,
    l2_normalise_rows,
)
from lavpr_ros.core.manifest import ModelChecksumError, ModelManifest, load_manifest, sha256_file
from lavpr_ros.core.providers import resolve_providers

H, W = 4, 6


def _linear_model(
    path: Path,
    weights: np.ndarray,
    layout: str = "NCHW",
    batch: int | str = "N",
    out_dims: tuple = ("N", None),
) -> None:
    """images -> Flatten -> MatMul(weights): every pixel and channel position matters."""
    in_shape = [batch, 3, H, W] if layout == "NCHW" else [batch, H, W, 3]
    out_shape = [batch if out_dims[0] == "N" else out_dims[0], out_dims[1] or weights.shape[1]]
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["images"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["descriptors"]),
        ],
        "linear",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _manifest(directory: Path, dim: int, **over) -> Path:
    m = ModelManifest(
        model_id="tiny-linear",
        kind="image",
        file="model.onnx",
        sha256=sha256_file(directory / "model.onnx"),
        output_dim=dim,
        input_size=(H, W),
        directory=directory,
    )
    for k, v in over.items():
        setattr(m, k, v)
    return m.save(directory)


@pytest.fixture
def weights() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3 * H * W, 8)).astype(np.float32)


@pytest.fixture
def model_dir(tmp_path: Path, weights: np.ndarray) -> Path:
    _linear_model(tmp_path / "model.onnx", weights)
    _manifest(tmp_path, 8)
    return tmp_path


def _images(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(H, W), (30, 41), (9, 5), (480, 640)]
    return [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(n)]


def _reference(images, weights, mean, std, bgr=False, layout="NCHW") -> np.ndarray:
    """Independent numpy twin of the whole pipeline (Pillow bilinear resize is the contract)."""
    rows = []
    for img in images:
        if img.shape[:2] != (H, W):
            img = np.asarray(Image.fromarray(img).resize((W, H), Image.Resampling.BILINEAR))
        x = img.astype(np.float64) / 255.0
        if bgr:
            x = x[:, :, ::-1]
        x = (x - np.array(mean)) / np.array(std)
        if layout == "NCHW":
            x = x.transpose(2, 0, 1)
        rows.append(x.reshape(-1) @ weights.astype(np.float64))
    out = np.array(rows)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_output_shape_normalised_and_matches_reference(model_dir: Path, weights) -> None:
    enc = OnnxEncoder(model_dir, providers=["CPUExecutionProvider"], intra_op_threads=1)
    assert isinstance(enc, Encoder)
    assert enc.model_id == "tiny-linear" and enc.dim == 8 and enc.provider == "CPUExecutionProvider"
    imgs = _images(7)
    out = enc.encode(imgs)
    assert out.shape == (7, 8) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    m = load_manifest(model_dir)
    np.testing.assert_allclose(out, _reference(imgs, weights, m.mean, m.std), atol=1e-4)
    assert enc.encode([]).shape == (0, 8)


def test_batching_matches_single(model_dir: Path) -> None:
    enc = OnnxEncoder(model_dir, batch_size=3)
    imgs = _images(8)
    together = enc.encode(imgs)
    alone = np.concatenate([enc.encode([im]) for im in imgs])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_bgr_nhwc_and_custom_mean_std(tmp_path: Path, weights) -> None:
    _linear_model(tmp_path / "model.onnx", weights, layout="NHWC")
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    _manifest(tmp_path, 8, color_order="BGR", input_layout="NHWC", mean=mean, std=std)
    imgs = _images(5, seed=3)
    out = OnnxEncoder(tmp_path).encode(imgs)
    ref = _reference(imgs, weights, mean, std, bgr=True, layout="NHWC")
    np.testing.assert_allclose(out, ref, atol=1e-4)
    # and the RGB/NCHW reference is clearly different, so the test can tell them apart
    assert np.abs(out - _reference(imgs, weights, mean, std)).max() > 1e-2


def test_fixed_batch_of_one_loops(tmp_path: Path, weights) -> None:
    _linear_model(tmp_path / "model.onnx", weights, batch=1, out_dims=(1, None))
    _manifest(tmp_path, 8)
    enc = OnnxEncoder(tmp_path)
    assert enc.fixed_batch == 1
    assert enc.encode(_images(5)).shape == (5, 8)


def test_dynamic_output_dim_probed(tmp_path: Path, weights) -> None:
    _linear_model(tmp_path / "model.onnx", weights, out_dims=("N", "D"))
    _manifest(tmp_path, 9)
    with pytest.raises(ModelLoadError, match="dimension 8 but the manifest says output_dim 9"):
        OnnxEncoder(tmp_path)


def test_wrong_output_dim_refused(tmp_path: Path, weights) -> None:
    _linear_model(tmp_path / "model.onnx", weights)
    _manifest(tmp_path, 16)
    with pytest.raises(ModelLoadError, match="output_dim 16"):
        OnnxEncoder(tmp_path)


def test_wrong_input_size_or_name_refused(tmp_path: Path, weights) -> None:
    _linear_model(tmp_path / "model.onnx", weights)
    _manifest(tmp_path, 8, input_size=(8, 8))
    with pytest.raises(ModelLoadError, match="input_size"):
        OnnxEncoder(tmp_path)
    _manifest(tmp_path, 8, input_name="pixels")
    with pytest.raises(ModelLoadError, match="no input 'pixels'"):
        OnnxEncoder(tmp_path)


def test_checksum_mismatch_refused(model_dir: Path, weights) -> None:
    _linear_model(model_dir / "model.onnx", weights * 2)  # same graph, other weights
    with pytest.raises(ModelChecksumError, match="expected sha256"):
        OnnxEncoder(model_dir)


def test_missing_model_file(model_dir: Path) -> None:
    (model_dir / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        OnnxEncoder(model_dir)


def test_corrupt_onnx_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07garbage" * 100)
    _manifest(tmp_path, 8)  # checksum of the garbage: only the loader can object
    with pytest.raises(ModelLoadError) as exc:
        OnnxEncoder(tmp_path)
    assert "cannot load ONNX model" in str(exc.value) and "model.onnx" in str(exc.value)


def test_all_zero_output_raises(tmp_path: Path) -> None:
    _linear_model(tmp_path / "model.onnx", np.zeros((3 * H * W, 8), np.float32))
    _manifest(tmp_path, 8)
    with pytest.raises(RuntimeError, match="all-zero"):
        OnnxEncoder(tmp_path).encode(_images(2))


def test_l2_normalise_rows_refuses_nan() -> None:
    with pytest.raises(RuntimeError, match="non-finite"):
        l2_normalise_rows(np.array([[1.0, np.nan]]))


def test_bad_images_refused(model_dir: Path) -> None:
    enc = OnnxEncoder(model_dir)
    with pytest.raises(ValueError, match="RGB uint8"):
        enc.encode([np.zeros((4, 6), np.uint8)])
    with pytest.raises(ValueError, match="RGB uint8"):
        enc.encode([np.zeros((4, 6, 3), np.float32)])


def test_non_image_manifest_refused(model_dir: Path) -> None:
    _manifest(model_dir, 8, kind="text")
    with pytest.raises(ValueError, match="kind 'text'"):
        OnnxEncoder(model_dir)


def test_provider_default_order_and_override() -> None:
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(None, avail) == avail
    assert resolve_providers(None, ["AzureExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]
    assert resolve_providers(["cuda", "cpu"], avail) == avail[1:]
    with pytest.raises(ValueError) as exc:
        resolve_providers(["ROCMExecutionProvider"], avail)
    assert "ROCMExecutionProvider" in str(exc.value) and "CUDAExecutionProvider" in str(exc.value)


def test_unknown_or_unavailable_provider(model_dir: Path) -> None:
    with pytest.raises(ValueError) as exc:
        OnnxEncoder(model_dir, providers=["NoSuchExecutionProvider"])
    assert "CPUExecutionProvider" in str(exc.value)  # lists the available ones
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="CUDAExecutionProvider"):
            OnnxEncoder(model_dir, providers=["CUDAExecutionProvider"])
    assert OnnxEncoder(model_dir, providers=["cpu"]).provider == "CPUExecutionProvider"


def test_tensorrt_provider_options_passed(model_dir: Path, monkeypatch, tmp_path: Path) -> None:
    """With TensorRT listed as available, the session gets fp16 + engine-cache options."""
    seen = {}
    real_session = ort.InferenceSession

    def fake_available():
        return ["TensorrtExecutionProvider", "CPUExecutionProvider"]

    def recording_session(path, so, providers):
        seen["providers"] = providers
        return real_session(path, so, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", fake_available)
    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    cache = tmp_path / "cache"
    enc = OnnxEncoder(model_dir, trt_cache_dir=cache, trt_fp16=False)
    name, opts = seen["providers"][0]
    assert name == "TensorrtExecutionProvider"
    assert opts == {
        "trt_fp16_enable": False,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
    }
    assert seen["providers"][1] == "CPUExecutionProvider" and cache.is_dir()
    assert enc.provider == "CPUExecutionProvider"  # what the session really uses


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt present")
def test_tensorrt_encoder_clear_error_without_tensorrt(model_dir: Path) -> None:
    (model_dir / "model.engine").write_bytes(b"x")
    with pytest.raises(RuntimeError) as exc:
        TensorRTEncoder(model_dir / "model.engine", model_dir)
    assert "tensorrt" in str(exc.value) and "OnnxEncoder" in str(exc.value)
    with pytest.raises(RuntimeError, match="tensorrt"):
        create_encoder(str(model_dir / "model.engine"))


def test_create_encoder_forms(model_dir: Path) -> None:
    pn = create_encoder("patchnorm")
    assert pn.dim == 64 * 32 and isinstance(pn, Encoder)
    pn2 = create_encoder("patchnorm:32x16:4")
    assert pn2.dim == 512 and pn2.encode(_images(2)).shape == (2, 512)
    assert create_encoder("patchnorm:32x16").dim == 512
    for spec in (model_dir, model_dir / "manifest.yaml", model_dir / "model.onnx"):
        enc = create_encoder(str(spec), providers=["cpu"])
        assert isinstance(enc, OnnxEncoder) and enc.dim == 8


def test_create_encoder_errors(tmp_path: Path) -> None:
    # Issue #15 item 18: a bad model path says "not found" with the absolute path and the cwd,
    # the places looked in, the models that exist and the accepted spec forms.
    with pytest.raises(FileNotFoundError) as exc:
        create_encoder("resnet-magic")
    msg = str(exc.value)
    assert "model not found: " + str(Path("resnet-magic").absolute()) in msg
    assert f"(cwd {Path.cwd()})" in msg and "Models available" in msg
    assert "patchnorm" in msg and "manifest" in msg
    with pytest.raises(ValueError, match="patchnorm:WxH"):
        create_encoder("patchnorm:abc")
    with pytest.raises(FileNotFoundError):
        create_encoder(str(tmp_path / "nothing.yaml"))
    with pytest.raises(FileNotFoundError):
        create_encoder(str(tmp_path))  # a directory without manifest.yaml
