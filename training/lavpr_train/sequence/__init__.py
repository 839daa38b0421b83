"""SeqNet sequence encoder: training (SeqMatchNet loss + mining), evaluation, ONNX export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _models() -> str:
    from ..paths import repo_root

    return str(repo_root() / "models")


def cmd_seq_train(args) -> int:
    import torch

    from .data import windows
    from .evaluate import evaluate_sequence
    from .export import export_sequence_model
    from .model import SeqNetConfig
    from .train import SeqTrainConfig, embed, train_seqnet

    torch.set_num_threads(max(1, args.threads))
    mcfg = SeqNetConfig(
        seq_len=args.seq_len, kernel=args.kernel, channels=args.channels, mode=args.mode
    )
    cfg = SeqTrainConfig(
        out=args.run,
        model=mcfg,
        epochs=args.epochs,
        lr=args.lr,
        num_neg=args.num_neg,
        seed=args.seed,
        max_minutes=args.max_minutes,
        cache=args.cache,
    )
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


def cmd_seq_export(args) -> int:
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


def cmd_seq_eval(args) -> int:
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
    cache = "/tmp/lavpr_nordland_patchnorm_64x32_p8.npz"
    threads = int(os.environ.get("LAVPR_THREADS", 1))

    sp = subparsers.add_parser(
        "seq-train", help="train SeqNet on Nordland frames 0-2399, test on 2500-3575"
    )
    sp.add_argument("--run", default="runs/seqnet", help="run folder (checkpoint, logs)")
    sp.add_argument(
        "--mode", default="meanOfPairs", choices=["meanOfPairs", "centerOnly", "seqdesc"]
    )
    sp.add_argument("--seq-len", type=int, default=10)
    sp.add_argument("--kernel", type=int, default=5)
    sp.add_argument("--channels", type=int, default=128)
    sp.add_argument("--epochs", type=int, default=4)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--num-neg", type=int, default=5)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--max-minutes", type=float, default=10.0)
    sp.add_argument("--shortlist-k", type=int, default=20)
    sp.add_argument("--cache", default=cache, help="descriptor cache (.npz)")
    sp.add_argument("--threads", type=int, default=threads)
    sp.add_argument("--export", action="store_true", help="also export to --out")
    sp.add_argument("--out", default=_models())
    sp.add_argument("--model-id", default="seqnet-patchnorm-nordland")
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_seq_train)

    sp = subparsers.add_parser("seq-export", help="SeqNet checkpoint -> ONNX + manifest")
    sp.add_argument("checkpoint")
    sp.add_argument("--out", default=_models())
    sp.add_argument("--model-id", default="seqnet-patchnorm-nordland")
    sp.add_argument("--tolerance", type=float, default=1e-4)
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_seq_export)

    sp = subparsers.add_parser(
        "seq-eval", help="R@1 of an exported SeqNet (onnxruntime) vs the training-free matcher"
    )
    sp.add_argument("model", help="models/<id> (manifest kind sequence)")
    sp.add_argument("--shortlist-k", type=int, default=20)
    sp.add_argument("--cache", default=cache)
    sp.set_defaults(func=cmd_seq_eval)
