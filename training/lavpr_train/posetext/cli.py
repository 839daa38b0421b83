"""``lavpr-train posetext-*``: train, export and evaluate the pose-text encoder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..cliargs import add_config_args, add_export_args, config_from_args
from ..paths import repo_root

TRAIN_HELP = {
    "data": "'synthetic' or a folder of <clip>.npy + <clip>.json (DrivingScenePTX)",
    "train_size": "generated training windows",
    "test_size": "generated test windows",
    "epochs": "training epochs",
    "batch": "batch size",
    "lr": "learning rate",
    "max_minutes": "time budget [min]",
    "text_model": "frozen sentence encoder (models/<id>)",
}


def cmd_posetext_train(args: Any) -> int:
    import torch

    from .export import export_pose_text_model
    from .train import PTTrainConfig, train_posetext

    torch.set_num_threads(max(1, args.threads))
    cfg = config_from_args(PTTrainConfig, args, args.train_fields, out=args.run)
    res = train_posetext(cfg)
    print(f"training {res['seconds']:.1f} s (data + text embeddings {res['data_seconds']:.1f} s)")
    if args.export:
        from .data import feature_config

        folder, errs = export_pose_text_model(
            res["model"],
            args.out,
            asdict(feature_config()),
            text_model=res["text_model"],
            model_id=args.model_id,
            force=args.force,
            extra={"train_data": args.data, "test_metrics": res.get("metrics", {})},
        )
        print(
            f"exported {folder} (parity max abs error pose {errs['pose']:.2e}, "
            f"text {errs['text']:.2e})"
        )
    return 0


def cmd_posetext_export(args: Any) -> int:
    from .export import export_pose_text_model
    from .train import load_posetext

    model, ck = load_posetext(args.checkpoint)
    folder, errs = export_pose_text_model(
        model,
        args.out,
        ck["features"],
        text_model=ck["text_model"],
        model_id=args.model_id,
        force=args.force,
        tolerance=args.tolerance,
    )
    print(f"exported {folder} (parity pose {errs['pose']:.2e}, text {errs['text']:.2e})")
    return 0


def cmd_posetext_eval(args: Any) -> int:
    from .evaluate import retrieval, text_nav_effect

    out = {"retrieval": retrieval(args.model, n=args.gallery, text_model=args.text_model)}
    if args.routes > 0:
        out["text_nav"] = text_nav_effect(
            args.model, routes=args.routes, text_model=args.text_model
        )
    print(json.dumps(out, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add posetext-train, posetext-export and posetext-eval."""
    from .train import PTTrainConfig

    models = str(repo_root() / "models")
    threads = int(os.environ.get("LAVPR_THREADS", 1))
    text_model = str(Path(models) / "minilm-l6-v2")
    default_id = "posetext-minilm-synthetic"

    sp = subparsers.add_parser(
        "posetext-train", help="contrastive pose-window / instruction encoder (generated data)"
    )
    sp.add_argument("--run", default="runs/posetext", help="run folder (default: %(default)s)")
    train_fields = add_config_args(
        sp,
        PTTrainConfig,
        [
            "data",
            "train_size",
            "test_size",
            "epochs",
            "batch",
            "lr",
            "seed",
            "max_minutes",
            "text_model",
        ],
        help=TRAIN_HELP,
        defaults={"text_model": text_model},
    )
    sp.add_argument(
        "--threads", type=int, default=threads, help="torch CPU threads (default: %(default)s)"
    )
    sp.add_argument("--export", action="store_true", help="also export to --out")
    add_export_args(sp, models, default_id)
    sp.set_defaults(func=cmd_posetext_train, train_fields=train_fields)

    sp = subparsers.add_parser("posetext-export", help="posetext checkpoint -> ONNX + manifest")
    sp.add_argument("checkpoint")
    add_export_args(sp, models, default_id, tolerance=1e-4)
    sp.set_defaults(func=cmd_posetext_export)

    sp = subparsers.add_parser(
        "posetext-eval", help="instruction->window R@1/5 and the text_nav effect (onnxruntime)"
    )
    sp.add_argument("model", help="models/<id> (manifest kind pose_text)")
    sp.add_argument(
        "--gallery", type=int, default=1000, help="windows searched (default: %(default)s)"
    )
    sp.add_argument(
        "--routes", type=int, default=10, help="text_nav routes, 0 = skip (default: %(default)s)"
    )
    sp.add_argument(
        "--text-model", default=text_model, help="sentence encoder (default: %(default)s)"
    )
    sp.set_defaults(func=cmd_posetext_eval)
