"""Reduced-precision variants of an exported image model, each in its own ``models/<id>/``
folder with its own manifest: fp16 (onnxruntime's float16 converter, fp32 inputs/outputs kept),
int8 (onnxruntime.quantization, static QDQ with real calibration images, or dynamic), and a
TensorRT fp16 engine next to the ONNX file when ``tensorrt`` is importable.

Each variant records its parity against the fp32 ONNX model (max abs difference of the
L2-normalised descriptors on real images) and, optionally, its Corridor Recall@1 delta.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data import load_rgb, preprocess
from .manifest import read_manifest, staging_dir, write_manifest

FP16_TOLERANCE = 1e-2
INT8_TOLERANCE = 0.1


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _session(path: Path):
    from lavpr_ros.core.onnx_model import open_session

    return open_session(path, path.parent.name, providers=["cpu"])


def _parity_batch(m: dict, n: int = 6) -> np.ndarray:
    from .image import sample_images

    images, _ = sample_images(n)
    return preprocess(images, tuple(m["input_size"]), m["mean"], m["std"])


def _calibration_batches(m: dict, n: int = 32) -> list[np.ndarray]:
    """Real images for int8 calibration: Corridor *reference* frames and Nordland summer frames
    (never the query images the recall check uses); random images without data."""
    from ..paths import dataset_dir

    paths: list[Path] = []
    try:
        ref = sorted((dataset_dir("corridor") / "ref").glob("*.jpg"))
        paths += ref[:: max(1, len(ref) // (n // 2))][: n // 2]
        summer = sorted((dataset_dir("nordland") / "summer").glob("*.png"))
        paths += summer[:: max(1, len(summer) // (n - len(paths)))][: n - len(paths)]
        imgs = [load_rgb(p) for p in paths]
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        imgs = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(n)]
    x = preprocess(imgs, tuple(m["input_size"]), m["mean"], m["std"])
    return [x[i : i + 1] for i in range(len(x))]


def _compare(src: Path, variant: Path, m: dict) -> float:
    batch = _parity_batch(m)
    a = _session(src).run([m["output_name"]], {m["input_name"]: batch})[0]
    b = _session(variant).run([m["output_name"]], {m["input_name"]: batch})[0]
    return float(np.abs(_norm(a) - _norm(b)).max())


def corridor_recall(folder: Path, threads: int = 2) -> float | None:
    from .. import data
    from ..evaluate import OrtImageModel, evaluate_set

    try:
        ds = data.corridor()
    except FileNotFoundError:
        return None
    return evaluate_set(OrtImageModel(folder, threads), ds)["R@1"]


def _write_variant(
    src_dir: Path,
    out: Path,
    model_id: str,
    precision: str,
    convert,
    tolerance: float,
    force: bool,
    eval_recall: bool,
    note: str,
) -> Path:
    t0 = time.perf_counter()
    m = read_manifest(src_dir)
    src_onnx = src_dir / m["file"]
    with staging_dir(out, model_id, force=force) as tmp:
        dst = tmp / "model.onnx"
        convert(src_onnx, dst, m)
        err = _compare(src_onnx, dst, m)
        if not err <= tolerance:
            raise RuntimeError(
                f"{model_id}: {precision} vs fp32 max abs descriptor difference {err:.3g} > "
                f"{tolerance:g}"
            )
        fields = {k: v for k, v in m.items() if k not in ("format_version", "sha256")}
        fields["model_id"] = model_id
        fields["file"] = "model.onnx"
        fields["description"] = f"{m.get('description', '')} [{precision}]".strip()
        fields["source"] = f"{m.get('source', '')}; {note}"
        extra = dict(m.get("extra") or {})
        extra.update(
            {
                "precision": precision,
                "derived_from": m["model_id"],
                "derived_from_sha256": m["sha256"],
                "parity_vs_fp32_max_abs_error": err,
                "parity_vs_fp32_tolerance": tolerance,
            }
        )
        fields["extra"] = extra
        write_manifest(tmp, fields)
        if eval_recall:
            r32, rv = corridor_recall(src_dir), corridor_recall(tmp)
            if r32 is not None:
                extra.update({"corridor_R@1_fp32": r32, f"corridor_R@1_{precision}": rv})
                extra["corridor_R@1_delta"] = round(rv - r32, 4)
                write_manifest(tmp, fields)
    final = out / model_id
    size = (final / "model.onnx").stat().st_size / 1e6
    print(
        f"exported {model_id} ({precision}) -> {final} ({size:.1f} MB, vs fp32 max abs error "
        f"{err:.3g}, {time.perf_counter() - t0:.1f} s)"
        + (
            f"; Corridor R@1 fp32 {extra['corridor_R@1_fp32']} -> {precision} "
            f"{extra[f'corridor_R@1_{precision}']}"
            if "corridor_R@1_fp32" in extra
            else ""
        )
    )
    return final


def export_fp16(
    src_dir: str | Path,
    out: str | Path | None = None,
    model_id: str | None = None,
    tolerance: float = FP16_TOLERANCE,
    force: bool = False,
    eval_recall: bool = False,
) -> Path:
    """fp16 weights and compute, fp32 graph inputs/outputs (the runtime feeds float32)."""
    src_dir = Path(src_dir)
    out = Path(out) if out else src_dir.parent

    def convert(src, dst, m):
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(dst))

    return _write_variant(
        src_dir,
        out,
        model_id or f"{read_manifest(src_dir)['model_id']}-fp16",
        "fp16",
        convert,
        tolerance,
        force,
        eval_recall,
        "fp16 via onnxruntime.transformers.float16 (keep_io_types)",
    )


def export_int8(
    src_dir: str | Path,
    out: str | Path | None = None,
    model_id: str | None = None,
    mode: str = "static",
    tolerance: float = INT8_TOLERANCE,
    force: bool = False,
    eval_recall: bool = False,
    calibration_images: int = 32,
) -> Path:
    """int8: ``static`` (QDQ, per-channel weights, activations calibrated on real images) or
    ``dynamic`` (weights only, activations quantised at run time)."""
    src_dir = Path(src_dir)
    out = Path(out) if out else src_dir.parent
    if mode not in ("static", "dynamic"):
        raise ValueError(f"int8 mode must be static or dynamic, not {mode!r}")

    def convert(src, dst, m):
        from onnxruntime import quantization as q

        if mode == "dynamic":
            q.quantize_dynamic(str(src), str(dst), weight_type=q.QuantType.QInt8)
            return

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.it = iter(_calibration_batches(m, calibration_images))

            def get_next(self):
                x = next(self.it, None)
                return None if x is None else {m["input_name"]: x}

        q.quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
        )

    return _write_variant(
        src_dir,
        out,
        model_id or f"{read_manifest(src_dir)['model_id']}-int8",
        "int8",
        convert,
        tolerance,
        force,
        eval_recall,
        f"int8 via onnxruntime.quantization ({mode}"
        + (f", {calibration_images} calibration images" if mode == "static" else "")
        + ")",
    )


def build_tensorrt_engine(
    src_dir: str | Path, max_batch: int = 32, fp16: bool = True, workspace_gb: float = 2.0
) -> Path | None:
    """Serialize a TensorRT engine ``model.fp16.engine`` next to the ONNX file (dynamic batch
    1..``max_batch``) and record it in the manifest's ``extra.tensorrt_engine``. Returns None
    with a message when TensorRT is not importable (it needs an NVIDIA GPU + the tensorrt
    wheel, as in docker/)."""
    try:
        import tensorrt as trt
    except ImportError:
        print(
            "TensorRT engine skipped: the `tensorrt` Python package is not importable here "
            "(needs an NVIDIA GPU and `pip install tensorrt`; the runtime Docker image has it). "
            "The ONNX model runs with onnxruntime's TensorRT/CUDA execution providers instead."
        )
        return None
    src_dir = Path(src_dir)
    m = read_manifest(src_dir)
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse((src_dir / m["file"]).read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {src_dir / m['file']}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shape = (
        (3, *m["input_size"]) if m.get("input_layout", "NCHW") == "NCHW" else (*m["input_size"], 3)
    )
    profile.set_shape(
        m["input_name"], (1, *shape), (min(8, max_batch), *shape), (max_batch, *shape)
    )
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError("TensorRT engine build failed")
    name = "model.fp16.engine" if fp16 else "model.engine"
    tmp = src_dir / f".{name}.tmp"
    tmp.write_bytes(bytes(engine))
    tmp.replace(src_dir / name)
    fields = {k: v for k, v in m.items() if k not in ("format_version", "sha256")}
    extra = dict(fields.get("extra") or {})
    extra["tensorrt_engine"] = {
        "file": name,
        "precision": "fp16" if fp16 else "fp32",
        "max_batch": max_batch,
        "tensorrt": trt.__version__,
        "build_s": round(time.perf_counter() - t0, 1),
    }
    fields["extra"] = extra
    write_manifest(src_dir, fields)
    print(f"TensorRT engine -> {src_dir / name} ({time.perf_counter() - t0:.1f} s)")
    return src_dir / name
