"""``lavpr-train seq-*``: train, export and evaluate the SeqNet sequence encoder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..cliargs import add_config_args, add_export_args, config_from_args
from ..paths import repo_root

MODEL_HELP = {
    "seq_len": "frames per sequence",
    "kernel": "temporal filter length",
    "channels": "output channels",
    "mode": "meanOfPairs, centerOnly or seqdesc",
}
TRAIN_HELP = {
    "epochs": "training epochs",
    "lr": "learning rate",
    "num_neg": "negatives per triplet",
    "max_minutes": "time budget [min]",
    "cache": "patch-norm descriptor cache (.npz)",
}


def cmd_seq_train(args: Any) -> int:
    import torch

    from .data import windows
    from .evaluate import evaluate_sequence
    from .export import export_sequence_model
    from .model import SeqNetConfig
    from .train import SeqTrainConfig, embed, train_seqnet

    torch.set_num_threads(max(1, args.threads))
    mcfg = config_from_args(SeqNetConfig, args, args.model_fields)
    cfg = config_from_args(SeqTrainConfig, args, args.train_fields, out=args.run, model=mcfg)
    res = train_seqnet(cfg)
    model = res["model"]
    metrics = evaluate_sequence(
        lambda f: embed(model, windows(f, mcfg.seq_len)).numpy(),
        mcfg.seq_len,
        shortlist_k=args.shortlist_k,
        cache=args.cache,
    )
    metrics["train_s"] = round(res["seconds"], 1)
    Path(args.run, "test_metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    if args.export:
        folder, err = export_sequence_model(
            model,
            args.out,
            args.model_id,
            force=args.force,
            extra={"train_range": list(cfg.train_range), "test_metrics": metrics},
        )
        print(f"exported {folder} (parity max abs error {err:.2e})")
    return 0


def cmd_seq_export(args: Any) -> int:
    from .export import export_sequence_model
    from .train import load_seqnet

    folder, err = export_sequence_model(
        load_seqnet(args.checkpoint),
        args.out,
        args.model_id,
        force=args.force,
        tolerance=args.tolerance,
    )
    print(f"exported {folder} (parity max abs error {err:.2e})")
    return 0


def cmd_seq_eval(args: Any) -> int:
    from lavpr_ros.core.sequence_encoder import SequenceEncoder

    from .evaluate import evaluate_sequence

    enc = SequenceEncoder(args.model)
    print(
        json.dumps(
            evaluate_sequence(
                enc.encode_route, enc.length, shortlist_k=args.shortlist_k, cache=args.cache
            ),
            indent=2,
        )
    )
    return 0


def register(subparsers: Any) -> None:
    """Add seq-train, seq-export and seq-eval."""
    from .model import SeqNetConfig
    from .train import SeqTrainConfig

    models = str(repo_root() / "models")
    threads = int(os.environ.get("LAVPR_THREADS", 1))
    cache = SeqTrainConfig.cache
    default_id = "seqnet-patchnorm-nordland"

    sp = subparsers.add_parser(
        "seq-train", help="train SeqNet on Nordland frames 0-2399, test on 2500-3575"
    )
    sp.add_argument("--run", default="runs/seqnet", help="run folder (default: %(default)s)")
    model_fields = add_config_args(
        sp, SeqNetConfig, ["mode", "seq_len", "kernel", "channels"], help=MODEL_HELP
    )
    train_fields = add_config_args(
        sp,
        SeqTrainConfig,
        ["epochs", "lr", "num_neg", "seed", "max_minutes", "cache"],
        help=TRAIN_HELP,
    )
    sp.add_argument(
        "--shortlist-k", type=int, default=20, help="candidates per query (default: %(default)s)"
    )
    sp.add_argument(
        "--threads", type=int, default=threads, help="torch CPU threads (default: %(default)s)"
    )
    sp.add_argument("--export", action="store_true", help="also export to --out")
    add_export_args(sp, models, default_id)
    sp.set_defaults(func=cmd_seq_train, model_fields=model_fields, train_fields=train_fields)

    sp = subparsers.add_parser("seq-export", help="SeqNet checkpoint -> ONNX + manifest")
    sp.add_argument("checkpoint")
    add_export_args(sp, models, default_id, tolerance=1e-4)
    sp.set_defaults(func=cmd_seq_export)

    sp = subparsers.add_parser(
        "seq-eval", help="R@1 of an exported SeqNet (onnxruntime) vs the training-free matcher"
    )
    sp.add_argument("model", help="models/<id> (manifest kind sequence)")
    sp.add_argument(
        "--shortlist-k", type=int, default=20, help="candidates per query (default: %(default)s)"
    )
    sp.add_argument("--cache", default=cache, help="descriptor cache (default: %(default)s)")
    sp.set_defaults(func=cmd_seq_eval)
