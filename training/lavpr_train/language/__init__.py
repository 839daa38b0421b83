"""LaVPR's language side for lavpr-train: text encoders with pooling, fusion, cross-modal
alignment and LoRA dual encoders. ``register(subparsers)`` adds the ``lang-*`` sub-commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _repo() -> Path:
    from ..paths import repo_root

    return repo_root()


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _pairs(values: list[str]) -> list[tuple[Path, Path]]:
    out = []
    for v in values:
        if ":" not in v:
            raise ValueError(f"--pair takes IMAGE_DIR:DESCRIPTIONS_CSV, got {v!r}")
        a, b = v.rsplit(":", 1)
        out.append((Path(a), Path(b)))
    return out


def _range(v: str | None) -> tuple[int, int] | None:
    if not v:
        return None
    a, b = v.split(":")
    return int(a), int(b)


def cmd_export_text(args: Any) -> int:
    from .text import export_text

    _threads(args.threads)
    export_text(
        args.out,
        args.model,
        args.model_id,
        args.pooling,
        args.pooler_checkpoint,
        args.max_length,
        args.tolerance,
        args.force,
    )
    return 0


def cmd_align(args: Any) -> int:
    from .align import AlignConfig, train_align

    _threads(args.threads)
    pairs = args.pair or [
        f"{args.corridor}/ref:{args.descriptions}/corridor_ref.csv",
        f"{args.corridor}/query:{args.descriptions}/corridor_query.csv",
    ]
    train_align(
        AlignConfig(
            out=args.out,
            image_model=args.image_model,
            sets=_pairs(pairs),
            text_model=args.text_model,
            model_id=args.model_id,
            pooling=args.pooling,
            loss=args.loss,
            hidden=args.hidden,
            epochs=args.epochs,
            lr=args.lr,
            temperature=args.temperature,
            positive_radius=args.positive_radius,
            train_frames=_range(args.train_frames),
            seed=args.seed,
            force=args.force,
            run_dir=args.run_dir,
        )
    )
    return 0


def cmd_fusion(args: Any) -> int:
    from .fusion import FusionConfig, train_fusion

    _threads(args.threads)
    train_fusion(
        FusionConfig(
            out=args.out,
            image_model=args.image_model,
            text_model=args.text_model,
            ref_dir=args.ref,
            ref_descriptions=args.ref_descriptions,
            query_dirs=args.query,
            query_descriptions=args.query_descriptions,
            ground_truth=args.ground_truth,
            mode=args.mode,
            model_id=args.model_id,
            train_queries=_range(args.train_queries),
            epochs=args.epochs,
            lr=args.lr,
            seed=args.seed,
            force=args.force,
        )
    )
    return 0


def cmd_clip_lora(args: Any) -> int:
    from .clip_lora import run_clip_lora

    _threads(args.threads)
    res = run_clip_lora(
        args.out,
        args.model_id,
        args.images,
        args.descriptions,
        args.clip_dir,
        args.tiny_random,
        args.steps,
        args.lr,
        args.rank,
        force=args.force,
    )
    print(
        f"lang-clip-lora: {res['pairs']} pairs, loss {res['losses'][0]:.3f} -> "
        f"{res['losses'][-1]:.3f}, parity {res['parity']}"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add lang-export-text, lang-align, lang-fusion and lang-clip-lora."""
    models = str(_repo() / "models")
    data = Path(os.environ.get("LAVPR_DATA", _repo() / ".." / "shared" / "data")) / "corridor"
    desc = _repo() / "evaluation" / "descriptions"
    img_default = f"{models}/mobilenetv2-gem-imagenet"
    argparse_suppress = "==SUPPRESS=="

    def common(sp) -> None:
        sp.add_argument("--out", default=models, help="models folder (default <repo>/models)")
        sp.add_argument("--model-id", default=None)
        sp.add_argument("--force", action="store_true", help="overwrite an existing export")
        sp.add_argument("--threads", type=int, default=int(os.environ.get("LAVPR_THREADS", 2)))

    sp = subparsers.add_parser(
        "lang-export-text", help="sentence encoder (mean/cls/reweight pooling) to ONNX"
    )
    common(sp)
    sp.add_argument("--model", default="minilm", help="minilm, bge-large or a local HF folder")
    sp.add_argument("--pooling", choices=("mean", "cls", "reweight"), default="mean")
    sp.add_argument("--pooler-checkpoint", help="align.pt from lang-align --pooling reweight")
    sp.add_argument("--max-length", type=int, default=256)
    sp.add_argument("--tolerance", type=float, default=1e-4)
    sp.set_defaults(func=cmd_export_text)

    sp = subparsers.add_parser("lang-align", help="text -> image-space projection (cross-modal)")
    common(sp)
    sp.add_argument("--image-model", default=img_default, help="frozen exported image model")
    sp.add_argument("--text-model", default="minilm", help="minilm, bge-large or a HF folder")
    sp.add_argument(
        "--pair",
        action="append",
        default=None,
        help="IMAGE_DIR:DESCRIPTIONS_CSV (repeatable; default Corridor ref+query)",
    )
    sp.add_argument("--corridor", default=str(data), help=argparse_suppress)
    sp.add_argument("--descriptions", default=str(desc), help=argparse_suppress)
    sp.add_argument("--pooling", choices=("mean", "cls", "reweight"), default="mean")
    sp.add_argument("--loss", choices=("infonce", "ms"), default="infonce")
    sp.add_argument("--hidden", type=int, default=1024, help="head hidden size (0 = linear)")
    sp.add_argument("--epochs", type=int, default=200)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--temperature", type=float, default=0.05)
    sp.add_argument("--positive-radius", type=int, default=2)
    sp.add_argument("--train-frames", default="0:55", help="A:B frames used ('' = all)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--run-dir", default=None, help="also save align.pt (head, pooler) here")
    sp.set_defaults(func=cmd_align)

    sp = subparsers.add_parser("lang-fusion", help="image+text fusion (dynamic/fixed/concat)")
    common(sp)
    sp.add_argument("--image-model", default=img_default)
    sp.add_argument("--text-model", default=f"{models}/minilm-l6-v2", help="exported text model")
    sp.add_argument("--ref", default=str(data / "ref"))
    sp.add_argument("--ref-descriptions", default=str(desc / "corridor_ref.csv"))
    sp.add_argument(
        "--query",
        nargs="+",
        default=[str(data / "query")],
        help="query folders (clean and degraded copies share descriptions)",
    )
    sp.add_argument("--query-descriptions", default=str(desc / "corridor_query.csv"))
    sp.add_argument("--ground-truth", default=str(data / "ground_truth.json"))
    sp.add_argument("--mode", choices=("dynamic", "fixed", "concat"), default="dynamic")
    sp.add_argument("--train-queries", default="0:55", help="A:B query indices for training")
    sp.add_argument("--epochs", type=int, default=300)
    sp.add_argument("--lr", type=float, default=3e-3)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_fusion)

    sp = subparsers.add_parser("lang-clip-lora", help="LoRA (r64, all linear) CLIP dual encoder")
    common(sp)
    sp.add_argument("--clip-dir", help="local transformers CLIPModel folder")
    sp.add_argument("--tiny-random", action="store_true", help="tiny random CLIP (tests)")
    sp.add_argument("--images", help="image folder (with --descriptions)")
    sp.add_argument("--descriptions", help="LaVPR-layout CSV for --images")
    sp.add_argument("--steps", type=int, default=20)
    sp.add_argument("--lr", type=float, default=1e-4)
    sp.add_argument("--rank", type=int, default=64)
    sp.set_defaults(func=cmd_clip_lora, model_id="clip-lora")
