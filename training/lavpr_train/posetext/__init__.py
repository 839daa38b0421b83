"""Pose-text encoder (SPARTAN idea): generator, contrastive training, evaluation, ONNX export."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any


def _models() -> str:
    from ..paths import repo_root

    return str(repo_root() / "models")


def cmd_posetext_train(args) -> int:
    import torch

    from .export import export_pose_text_model
    from .train import PTTrainConfig, train_posetext

    torch.set_num_threads(max(1, args.threads))
    cfg = PTTrainConfig(
        out=args.run,
        data=args.data,
        train_size=args.train_size,
        test_size=args.test_size,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        max_minutes=args.max_minutes,
        text_model=args.text_model,
    )
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


def cmd_posetext_export(args) -> int:
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


def cmd_posetext_eval(args) -> int:
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
    threads = int(os.environ.get("LAVPR_THREADS", 1))
    text_model = str(Path(_models()) / "minilm-l6-v2")

    sp = subparsers.add_parser(
        "posetext-train", help="contrastive pose-window / instruction encoder (generated data)"
    )
    sp.add_argument("--run", default="runs/posetext")
    sp.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' or a folder of <clip>.npy + <clip>.json (DrivingScenePTX)",
    )
    sp.add_argument("--train-size", type=int, default=12000)
    sp.add_argument("--test-size", type=int, default=1000)
    sp.add_argument("--epochs", type=int, default=20)
    sp.add_argument("--batch", type=int, default=256)
    sp.add_argument("--lr", type=float, default=2e-3)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--max-minutes", type=float, default=10.0)
    sp.add_argument("--text-model", default=text_model, help="frozen sentence encoder (models/)")
    sp.add_argument("--threads", type=int, default=threads)
    sp.add_argument("--export", action="store_true")
    sp.add_argument("--out", default=_models())
    sp.add_argument("--model-id", default="posetext-minilm-synthetic")
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_posetext_train)

    sp = subparsers.add_parser("posetext-export", help="posetext checkpoint -> ONNX + manifest")
    sp.add_argument("checkpoint")
    sp.add_argument("--out", default=_models())
    sp.add_argument("--model-id", default="posetext-minilm-synthetic")
    sp.add_argument("--tolerance", type=float, default=1e-4)
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_posetext_export)

    sp = subparsers.add_parser(
        "posetext-eval", help="instruction->window R@1/5 and the text_nav effect (onnxruntime)"
    )
    sp.add_argument("model", help="models/<id> (manifest kind pose_text)")
    sp.add_argument("--gallery", type=int, default=1000)
    sp.add_argument("--routes", type=int, default=10)
    sp.add_argument("--text-model", default=text_model)
    sp.set_defaults(func=cmd_posetext_eval)
