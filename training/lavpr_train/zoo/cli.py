"""``lavpr-train import-model`` and ``build-engine``: published checkpoints -> ONNX + manifest,
TensorRT engines next to exported models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ARCH_NAMES = ("boq", "cosplace", "eigenplaces", "megaloc", "mixvpr", "salad")


def _cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_model

    opts: dict[str, Any] = {"backbone": args.backbone, "dim": args.dim}
    for item in args.set or []:
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        opts[key] = int(value)
    import_model(
        args.arch,
        args.checkpoint,
        args.out,
        opts,
        tuple(args.input_size) if args.input_size else None,
        force=args.force,
    )
    if args.fp16:
        from ..export.variants import export_fp16

        export_fp16(
            args.out, Path(args.out).parent, f"{Path(args.out).name}-fp16", 2e-3, args.force
        )
    return 0


def _cmd_build_engine(args: argparse.Namespace) -> int:
    from ..export.variants import build_tensorrt_engine

    build_tensorrt_engine(args.model, max_batch=args.max_batch)
    return 0


def register(sub: Any) -> None:
    """Add ``import-model`` and ``build-engine``."""
    sp = sub.add_parser("import-model", help="published VPR checkpoint -> ONNX + manifest")
    sp.add_argument("--arch", required=True, choices=ARCH_NAMES, help="the published method")
    sp.add_argument("--checkpoint", required=True, type=Path, help="the file as published")
    sp.add_argument("--out", required=True, type=Path, help="model folder to write")
    sp.add_argument(
        "--backbone",
        default=None,
        help="cosplace/eigenplaces: ResNet18/50/101/152 or VGG16; boq: resnet50 or dinov2",
    )
    sp.add_argument("--dim", type=int, default=None, help="descriptor size of the checkpoint")
    sp.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="override the method's evaluation size (mixvpr: must match its mixer)",
    )
    sp.add_argument(
        "--set",
        action="append",
        metavar="KEY=INT",
        help="small DINOv2 variants: vit_depth=N, vit_dim=N",
    )
    sp.add_argument("--fp16", action="store_true", help="also write OUT-fp16 (fp16 weights)")
    sp.add_argument("--force", action="store_true", help="overwrite existing folders")
    sp.set_defaults(func=_cmd_import)
    sp = sub.add_parser("build-engine", help="TensorRT fp16 engine next to an exported model")
    sp.add_argument("model", type=Path, help="model folder (manifest.yaml + model.onnx)")
    sp.add_argument(
        "--max-batch", type=int, default=8, help="engine batch size (default: %(default)s)"
    )
    sp.set_defaults(func=_cmd_build_engine)
