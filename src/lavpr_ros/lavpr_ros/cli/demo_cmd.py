"""``lavpr demo``: the main job. A real recorded sequence as a rosbag2 bag, replayed into the
running node graph over DDS; loop closures printed as they happen, then online and offline
metrics side by side, and the report files in a results folder."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any


def _ensure_bag(args: argparse.Namespace, console: Any) -> Path:
    """The demo bag, built from the shared dataset the first time (mcap + ground-truth sidecar)."""
    from lavpr_ros.bags.writer import dataset_bag_frames, write_bag, write_sidecar

    bag = (
        Path(args.bag) if args.bag else Path(args.out) / f"{args.dataset}_{args.start}_{args.count}"
    )
    if (bag / "metadata.yaml").is_file():
        console.print(f"bag {bag} (exists, reused)")
        return bag
    frames = dataset_bag_frames(args.dataset, None, args.start, args.count, 1.0, args.spacing)
    console.print(f"building bag {bag} from $LAVPR_DATA/{args.dataset} ({len(frames)} images) ...")
    write_bag(frames, bag, overwrite=True, progress=True)
    travs = list(dict.fromkeys(f.traverse for f in frames))
    write_sidecar(
        bag,
        frames,
        1.5 * args.spacing,
        {
            "source": args.dataset,
            "traverses": travs,
            "start": args.start,
            "count": args.count,
            "rate_hz": 1.0,
            "spacing_m": args.spacing,
            "poses": "simulated route (core/sequences.route_pose)",
        },
    )
    return bag


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lavpr_ros.bags.evaluate import evaluate_bag
    from lavpr_ros.bags.replay import replay_bag
    from lavpr_ros.bags.report import markdown_table, print_table, write_json, write_offline_report
    from lavpr_ros.core.loop_closure import query_label

    console = Console()
    out = Path(args.out)
    bag = _ensure_bag(args, console)
    radius = 1.5 * args.spacing

    def show(msg: Any) -> None:
        q, m = msg.query_pose.position, msg.match_pose.position
        dist = math.dist((q.x, q.y), (m.x, m.y))
        verdict = "[green]correct[/]" if dist <= radius else "[red]false[/]"
        check = f"verified {msg.inliers} inl." if msg.verified else "not verified"
        console.print(
            f"  loop closure {query_label(msg.query_id):>12s} -> place {msg.match_id:<5d} "
            f"score {msg.score:.3f}  "
            f"conf {msg.confidence:.3f}  {check}  {verdict} ({dist:.1f} m)"
        )

    from lavpr_ros.bags.evaluate import config_encoder

    args.encoder = args.encoder or config_encoder(None)  # the default config's encoder
    console.print(
        f"[bold]lavpr demo[/]: launching vpr_encoder + place_map (encoder {args.encoder}) and "
        f"replaying {bag.name} at x{args.rate_factor:g} ..."
    )
    report = replay_bag(
        bag,
        out / "replay",
        encoder=args.encoder,
        rate_factor=args.rate_factor,
        verbose=args.verbose,
        progress=False,  # the closures are printed as they come instead
        log=lambda s: console.print(f"[dim]{s}[/]"),
        on_closure=show,
    )
    offline = evaluate_bag(
        bag, encoder=args.encoder, config_file=report["params"], progress=False, log=lambda s: None
    )
    paths = write_offline_report(offline, out / "offline", f"lavpr demo: {bag.name} (offline)")
    cols = {"online (node graph, DDS)": report["online"], "offline (core)": report["offline"]}
    write_json(out / "metrics.json", report)
    (out / "report.md").write_text(
        f"# lavpr demo: {bag.name}\n\n" + markdown_table(cols), encoding="utf-8"
    )
    print_table(cols, f"lavpr demo: {bag.name}, x{args.rate_factor:g}, {args.encoder}")
    o = report["online"]
    console.print(
        f"images published {o['images_published']}, descriptors {o['descriptors_received']}, "
        f"frames dropped by the encoder {o['encoder_dropped_frames']}"
    )
    console.print(
        f"report: {out / 'metrics.json'}, {out / 'report.md'}, "
        + ", ".join(str(p) for p in paths.values() if str(p).endswith(".png"))
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="replay a real recorded sequence (a rosbag2 bag) through the node graph and score it",
        description=__doc__,
    )
    p.add_argument(
        "--dataset", choices=["nordland", "corridor"], default="nordland", help="dataset replayed"
    )
    p.add_argument("--start", type=int, default=1000, help="first frame of the segment")
    p.add_argument("--count", type=int, default=300, help="frames per traverse")
    p.add_argument("--spacing", type=float, default=2.0, help="route spacing of places [m]")
    p.add_argument("--bag", help="use this bag instead of building one from the dataset")
    p.add_argument(
        "--rate-factor",
        type=float,
        default=15.0,
        help="replay speed (the bag has 1 frame per second of recorded time)",
    )
    p.add_argument(
        "--encoder",
        default=None,
        help="image encoder spec (default: vpr_encoder's encoder in config/lavpr.yaml)",
    )
    p.add_argument("--out", default="results/demo", help="report folder")
    p.add_argument("--verbose", action="store_true", help="echo the nodes' output")
    p.set_defaults(func=_demo)
