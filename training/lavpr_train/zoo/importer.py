"""``import-model``: published checkpoint -> our PyTorch twin -> ONNX + manifest, parity-checked
on real images with the method's own preprocessing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import IMAGENET_MEAN, IMAGENET_STD, preprocess
from ..export.image import FP32_TOLERANCE, OPSET, ParityError, export_onnx, sample_images
from ..export.manifest import sha256_file, staging_dir, write_manifest
from .archs import arch
from .backbones import DinoViT
from .checkpoint import CheckpointError, load_strict, read_state_dict


def build_model(name: str, options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The architecture with the given options (missing ones take the official defaults)."""
    spec = arch(name)
    given = {k for k, v in options.items() if v is not None}
    unknown = given - set(spec.defaults) - {"vit_depth", "vit_dim"}
    if unknown:
        raise ValueError(f"{name}: unknown options {sorted(unknown)} (known: {spec.defaults})")
    opts = {**spec.defaults, **{k: v for k, v in options.items() if v is not None}}
    torch.manual_seed(0)
    return spec.build(opts).eval(), opts


def fix_input_size(model: nn.Module, input_size: tuple[int, int]) -> None:
    """Precompute DINOv2 position embeddings for the export size (see DinoViT)."""
    for m in model.modules():
        if isinstance(m, DinoViT):
            m.freeze_input_size(*input_size)


def _hint(name: str, opts: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in opts.items() if v is not None)
    return (
        f"(arch {name}, options {shown or 'defaults'}; check --arch, --backbone, --dim, "
        "--input-size)"
    )


def torch_descriptors(model: nn.Module, batch: np.ndarray, chunk: int = 4) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [
                model(torch.from_numpy(batch[i : i + chunk])).numpy()
                for i in range(0, len(batch), chunk)
            ]
        )


def import_model(
    name: str,
    checkpoint: str | Path,
    out: str | Path,
    options: dict[str, Any] | None = None,
    input_size: tuple[int, int] | None = None,
    model_id: str | None = None,
    force: bool = False,
    tolerance: float = FP32_TOLERANCE,
    parity_images: int = 4,
) -> Path:
    """Write ``out/model.onnx`` + ``out/manifest.yaml``; returns ``out``."""
    t0 = time.perf_counter()
    spec = arch(name)
    checkpoint = Path(checkpoint)
    options = dict(options or {})
    if name == "mixvpr" and input_size:
        options["input_size"] = tuple(input_size)  # checked against the mixer's weights
    model, opts = build_model(name, options)
    state = read_state_dict(checkpoint)
    load_strict(model, state, str(checkpoint), _hint(name, opts))
    size = tuple(input_size or spec.input_size(opts))
    if any(isinstance(m, DinoViT) for m in model.modules()) and (size[0] % 14 or size[1] % 14):
        raise ValueError(f"{name}: DINOv2 input size must be a multiple of 14, got {size}")
    fix_input_size(model, size)
    interp = spec.interpolation(opts)
    images, img_desc = sample_images(parity_images)
    batch = preprocess(images, size, IMAGENET_MEAN, IMAGENET_STD, interp)
    out = Path(out)
    model_id = model_id or out.name
    with staging_dir(out.parent, out.name, force=force) as tmp:
        onnx_path = tmp / "model.onnx"
        export_onnx(model, onnx_path, size)
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        ref = torch_descriptors(model, batch)
        got = np.concatenate(
            [sess.run(None, {"images": batch[i : i + 1]})[0] for i in range(len(batch))]
        )
        err = float(np.abs(ref - got).max())
        if not err <= tolerance:
            raise ParityError(
                f"{name}: onnxruntime vs torch max abs error {err:.3g} > {tolerance:g}"
            )
        write_manifest(
            tmp,
            {
                "model_id": model_id,
                "kind": "image",
                "file": "model.onnx",
                "output_dim": int(ref.shape[1]),
                "input_name": "images",
                "output_name": "descriptors",
                "input_size": list(size),
                "color_order": "RGB",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "input_layout": "NCHW",
                "interpolation": interp,
                "normalize": True,
                "description": f"{spec.describe(opts)} (published {name} weights), "
                f"L2-normalised {ref.shape[1]}-d global image descriptor",
                "source": f"lavpr_train import-model --arch {name} from {checkpoint.name} "
                f"(torch {torch.__version__}, opset {OPSET}); published at {spec.url(opts)}",
                "extra": {
                    "arch": name,
                    "arch_options": {k: v for k, v in opts.items() if v is not None},
                    "checkpoint": checkpoint.name,
                    "checkpoint_sha256": sha256_file(checkpoint),
                    "resize": f"stretch to {size[0]}x{size[1]}, Pillow {interp} (torchvision "
                    "Resize on PIL images, as the method's evaluation)",
                    "published_recall_at_1": spec.published,
                    "opset": OPSET,
                    "parity_max_abs_error": err,
                    "parity_tolerance": tolerance,
                    "parity_images": img_desc,
                },
            },
        )
    print(
        f"imported {name} -> {out} ({(out / 'model.onnx').stat().st_size / 1e6:.1f} MB, "
        f"{ref.shape[1]}-d, parity max abs error {err:.3g}, {time.perf_counter() - t0:.1f} s)"
    )
    return out


__all__ = ["CheckpointError", "build_model", "import_model", "torch_descriptors"]
