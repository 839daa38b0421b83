"""``lavpr degrade``: blurred / weather-degraded copies of a query folder (LaVPR's MSLS-Blur and
MSLS-Weather, made here with numpy + Pillow; deterministic for a given --seed)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..core.degrade import KINDS, MAX_SEVERITY, degrade_folder


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    written = degrade_folder(args.src, args.out, args.kind, args.severity, args.seed)
    print(
        f"degrade: {len(written)} images ({args.kind}, severity {args.severity}, seed "
        f"{args.seed}) -> {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "degrade",
        help="make blurred / rain / fog / snow / dark copies of an image folder",
        description=__doc__,
    )
    p.add_argument("--kind", required=True, choices=KINDS, help="degradation applied")
    p.add_argument(
        "--severity", type=int, default=3, choices=range(1, MAX_SEVERITY + 1), help="1..5"
    )
    p.add_argument("--src", type=Path, required=True, help="folder of .jpg/.png images")
    p.add_argument("--out", type=Path, required=True, help="output folder (same file names)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the random parts")
    p.set_defaults(func=run)
