"""``lavpr-train lang-*``: text encoders with pooling, fusion, cross-modal alignment and LoRA
dual encoders (LaVPR's language side)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..cliargs import add_config_args, config_from_args, span

ALIGN_HELP = {
    "text_model": "minilm, bge-large or a HF folder",
    "pooling": "mean, cls or reweight",
    "loss": "infonce or ms",
    "hidden": "head hidden size (0 = linear)",
    "dropout": "head dropout",
    "epochs": "training epochs",
    "lr": "learning rate",
    "weight_decay": "AdamW weight decay",
    "temperature": "contrastive temperature",
    "positive_radius": "frames either side counted as the same place",
    "train_frames": "A:B frames used for training ('' = all)",
    "max_length": "text tokens",
    "run_dir": "also save align.pt (head, pooler) here",
}
FUSION_HELP = {
    "mode": "dynamic, fixed or concat",
    "train_queries": "A:B query indices used for training",
    "hidden": "gate hidden size",
    "out_dim": "fused descriptor size (concat mode)",
    "epochs": "training epochs",
    "lr": "learning rate",
    "weight_decay": "AdamW weight decay",
    "temperature": "contrastive temperature",
    "tolerance": "ONNX parity limit",
}


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
    cfg = config_from_args(
        AlignConfig,
        args,
        args.config_fields,
        out=args.out,
        image_model=args.image_model,
        sets=_pairs(pairs),
        model_id=args.model_id,
        force=args.force,
    )
    train_align(cfg)
    return 0


def cmd_fusion(args: Any) -> int:
    from .fusion import FusionConfig, train_fusion

    _threads(args.threads)
    cfg = config_from_args(
        FusionConfig,
        args,
        args.config_fields,
        out=args.out,
        image_model=args.image_model,
        text_model=args.text_model,
        ref_dir=args.ref,
        ref_descriptions=args.ref_descriptions,
        query_dirs=args.query,
        query_descriptions=args.query_descriptions,
        ground_truth=args.ground_truth,
        model_id=args.model_id,
        force=args.force,
    )
    train_fusion(cfg)
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


def _corridor() -> Path:
    """The Corridor dataset folder (the data setting; its default location when unset)."""
    from ..paths import dataset_dir

    try:
        return dataset_dir("corridor")
    except (FileNotFoundError, RuntimeError):
        return Path(os.environ.get("LAVPR_DATA", _repo().parent / "shared" / "data")) / "corridor"


def register(subparsers: Any) -> None:
    """Add lang-export-text, lang-align, lang-fusion and lang-clip-lora."""
    from .align import AlignConfig
    from .fusion import FusionConfig

    models = str(_repo() / "models")
    data = _corridor()
    desc = _repo() / "evaluation" / "descriptions"
    img_default = f"{models}/mobilenetv2-gem-imagenet"
    threads = int(os.environ.get("LAVPR_THREADS", 2))

    def common(sp) -> None:
        sp.add_argument("--out", default=models, help="models folder (default: %(default)s)")
        sp.add_argument("--model-id", default=None, help="exported id (default: per command)")
        sp.add_argument("--force", action="store_true", help="overwrite an existing export")
        sp.add_argument(
            "--threads", type=int, default=threads, help="torch CPU threads (default: %(default)s)"
        )

    sp = subparsers.add_parser(
        "lang-export-text", help="sentence encoder (mean/cls/reweight pooling) to ONNX"
    )
    common(sp)
    sp.add_argument(
        "--model", default="minilm", help="minilm, bge-large or a local HF folder (default: minilm)"
    )
    sp.add_argument(
        "--pooling",
        choices=("mean", "cls", "reweight"),
        default="mean",
        help="token pooling (default: %(default)s)",
    )
    sp.add_argument("--pooler-checkpoint", help="align.pt from lang-align --pooling reweight")
    sp.add_argument(
        "--max-length", type=int, default=256, help="text tokens (default: %(default)s)"
    )
    sp.add_argument(
        "--tolerance", type=float, default=1e-4, help="ONNX parity limit (default: %(default)s)"
    )
    sp.set_defaults(func=cmd_export_text)

    sp = subparsers.add_parser("lang-align", help="text -> image-space projection (cross-modal)")
    common(sp)
    sp.add_argument(
        "--image-model",
        default=img_default,
        help="frozen exported image model (default: %(default)s)",
    )
    sp.add_argument(
        "--pair",
        action="append",
        default=None,
        help="IMAGE_DIR:DESCRIPTIONS_CSV (repeatable; default Corridor ref+query)",
    )
    sp.add_argument("--corridor", default=str(data), help=argparse.SUPPRESS)
    sp.add_argument("--descriptions", default=str(desc), help=argparse.SUPPRESS)
    fields = add_config_args(
        sp,
        AlignConfig,
        [
            "text_model",
            "pooling",
            "loss",
            "hidden",
            "dropout",
            "epochs",
            "lr",
            "weight_decay",
            "temperature",
            "positive_radius",
            "train_frames",
            "seed",
            "max_length",
            "run_dir",
        ],
        help=ALIGN_HELP,
        defaults={"text_model": "minilm", "train_frames": (0, 55)},
        converters={"train_frames": span},
    )
    sp.set_defaults(func=cmd_align, config_fields=fields)

    sp = subparsers.add_parser("lang-fusion", help="image+text fusion (dynamic/fixed/concat)")
    common(sp)
    sp.add_argument(
        "--image-model", default=img_default, help="exported image model (default: %(default)s)"
    )
    sp.add_argument(
        "--text-model",
        default=f"{models}/minilm-l6-v2",
        help="exported text model (default: %(default)s)",
    )
    sp.add_argument(
        "--ref", default=str(data / "ref"), help="reference images (default: %(default)s)"
    )
    sp.add_argument(
        "--ref-descriptions",
        default=str(desc / "corridor_ref.csv"),
        help="reference descriptions (default: %(default)s)",
    )
    sp.add_argument(
        "--query",
        nargs="+",
        default=[str(data / "query")],
        help="query folders (clean and degraded copies share descriptions; default: Corridor's)",
    )
    sp.add_argument(
        "--query-descriptions",
        default=str(desc / "corridor_query.csv"),
        help="query descriptions (default: %(default)s)",
    )
    sp.add_argument(
        "--ground-truth",
        default=str(data / "ground_truth.json"),
        help="query -> reference ground truth (default: %(default)s)",
    )
    fields = add_config_args(
        sp,
        FusionConfig,
        [
            "mode",
            "train_queries",
            "hidden",
            "out_dim",
            "epochs",
            "lr",
            "weight_decay",
            "temperature",
            "seed",
            "tolerance",
        ],
        help=FUSION_HELP,
        converters={"train_queries": span},
    )
    sp.set_defaults(func=cmd_fusion, config_fields=fields)

    sp = subparsers.add_parser("lang-clip-lora", help="LoRA (r64, all linear) CLIP dual encoder")
    common(sp)
    sp.add_argument("--clip-dir", help="local transformers CLIPModel folder")
    sp.add_argument("--tiny-random", action="store_true", help="tiny random CLIP (tests)")
    sp.add_argument("--images", help="image folder (with --descriptions)")
    sp.add_argument("--descriptions", help="LaVPR-layout CSV for --images")
    sp.add_argument("--steps", type=int, default=20, help="training steps (default: %(default)s)")
    sp.add_argument("--lr", type=float, default=1e-4, help="learning rate (default: %(default)s)")
    sp.add_argument("--rank", type=int, default=64, help="LoRA rank (default: %(default)s)")
    sp.set_defaults(func=cmd_clip_lora, model_id="clip-lora")
