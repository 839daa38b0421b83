"""``lavpr bench core|ros``: argument parsing and printing; the benchmarks live in
:mod:`lavpr_ros.bench`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench.core import run_core


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks of the runtime pieces")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    core = sub.add_parser(
        "core",
        help="encoders, map search, sequence matching, memory per place (vs naive numpy)",
        description=__doc__,
    )
    core.add_argument("--quick", action="store_true", help="map sizes 1k and 10k only")
    core.add_argument(
        "--sizes",
        type=str,
        default=None,
        help="comma-separated map sizes [places]; k/M suffixes accepted (default 1k,10k,100k,1M)",
    )
    core.add_argument("--dim", type=int, default=512, help="descriptor dimension (default 512)")
    core.add_argument("--json", type=Path, default=None, help="also write the results here")
    core.add_argument("--onnx-model", type=Path, default=None, help="model manifest to time")
    core.add_argument(
        "--model-only",
        action="store_true",
        help="time only --onnx-model: ms per image at its input size and its memory (no maps)",
    )
    core.add_argument(
        "--hnsw-budget-s",
        type=float,
        default=300.0,
        help="skip an HNSW/IVF-PQ build whose estimated time exceeds this (default 300 s)",
    )
    core.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/faiss threads for timed queries and encoders (default 1: stable on a shared "
        "machine; 0 = all cores); index builds always use all cores",
    )
    core.add_argument("--seed", type=int, default=0, help="random seed of the synthetic maps")
    core.set_defaults(func=run_core)

    ros = sub.add_parser(
        "ros",
        help="end-to-end latency (image -> loop closure) and max sustained rate of the graph",
        description="Starts the real node graph per encoder and rate; see bench/ros.py.",
    )
    ros.add_argument(
        "--encoders",
        default=None,
        help="comma-separated encoder specs (default: the configuration's encoder, what a robot "
        "runs, then patchnorm as the baseline)",
    )
    ros.add_argument("--rates", default="5,10,20,40,80", help="input rates to try [Hz]")
    ros.add_argument("--frames", type=int, default=60, help="frames per traverse (2 traverses)")
    ros.add_argument("--image-size", default="640x480", help="published image size WxH")
    ros.add_argument(
        "--json", type=Path, default=Path("results/bench-ros.json"), help="results JSON"
    )
    ros.add_argument(
        "--map",
        type=Path,
        default=None,
        help="saved map place_map loads first (e.g. .cache/scale/map-1000000 of lavpr bench "
        "scale); then only the configuration's encoder runs (the map's model)",
    )
    ros.set_defaults(func=run_ros)

    from .bench_scale import register as register_scale

    register_scale(sub)


def run_ros(args: argparse.Namespace) -> int:
    """`lavpr bench ros`: print one table row per (encoder, rate) and the max sustained rate."""
    from rich.console import Console
    from rich.table import Table

    from ..bench.ros import run_bench_ros

    console = Console()
    if args.encoders:
        encoders = [e for e in args.encoders.split(",") if e]
    else:
        from ..bags.evaluate import config_encoder

        default = config_encoder(None)
        encoders = [default] + (["patchnorm"] if default != "patchnorm" and not args.map else [])
    w, h = (int(v) for v in args.image_size.lower().split("x"))
    res = run_bench_ros(
        encoders,
        [float(r) for r in args.rates.split(",")],
        frames_per_traverse=args.frames,
        image_size=(w, h),
        out_json=args.json,
        map_path=args.map,
        progress=lambda r: console.print(
            f"{Path(r['encoder']).name} @ {r['rate_hz']:g} Hz: "
            f"encoded {r['encoded']}/{r['sent']}, "
            f"image->descriptor p50 {r['image_to_descriptor_p50_ms']:.1f} ms, "
            f"image->loop closure p50 {r['image_to_loop_closure_p50_ms']:.1f} ms"
        ),
    )
    table = Table(title=f"bench ros ({res['image_size']} rgb8, {res['frames']} frames per run)")
    for col in (
        "encoder",
        "rate Hz",
        "encoded",
        "img->desc p50/p95 ms",
        "img->LC p50/p95 ms",
        "lag growth",
        "sustained",
    ):
        table.add_column(col)
    for r in res["runs"]:
        table.add_row(
            Path(r["encoder"]).name,
            f"{r['rate_hz']:g}",
            f"{r['encoded']}/{r['sent']}",
            f"{r['image_to_descriptor_p50_ms']:.1f} / {r['image_to_descriptor_p95_ms']:.1f}",
            f"{r['image_to_loop_closure_p50_ms']:.1f} / {r['image_to_loop_closure_p95_ms']:.1f}",
            f"{r['lag_growth']:.2f}",
            "yes" if r["sustained"] else "no",
        )
    console.print(table)
    for enc, rate in res["max_sustained_rate_hz"].items():
        console.print(f"max sustained rate {Path(enc).name}: {rate:g} Hz (of those tried)")
    console.print(f"wrote {args.json}")
    return 0


# --------------------------------------------------------------------------- helpers
