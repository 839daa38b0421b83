"""``lavpr demo``: the node graph on a real recorded sequence, loop closures live, then metrics."""

from __future__ import annotations

import argparse
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lavpr_ros.graph.description import default_config_file
    from lavpr_ros.graph.processes import ProcessGroup
    from lavpr_ros.tools.online_run import (
        ClosureRecord,
        Listener,
        SequenceRun,
        derived_config,
        env_for_run,
        play_and_wait,
        running_graph,
        score_closures,
        write_report,
    )
    from lavpr_ros.tools.sequences import DATASET_TRAVERSES, dataset_frames

    console = Console()
    frames = dataset_frames(args.dataset, DATASET_TRAVERSES[args.dataset], args.start, args.count)
    radius = args.gt_radius if args.gt_radius > 0 else 1.5 * args.spacing
    env = env_for_run()
    console.print(
        f"[bold]lavpr demo[/]: {args.dataset} frames {args.start}..{args.start + args.count - 1}, "
        f"{' then '.join(DATASET_TRAVERSES[args.dataset])} ({len(frames)} images at "
        f"{args.rate} Hz), encoder {args.encoder}, ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}"
    )

    def show(c: ClosureRecord) -> None:
        ok = c.distance() <= radius
        console.print(
            f"  loop closure {c.query_id:5d} -> {c.match_id:5d}  score {c.score:.3f}  "
            f"conf {c.confidence:.3f}  {'[green]correct[/]' if ok else '[red]false[/]'} "
            f"({c.distance():.1f} m)"
        )

    group = ProcessGroup(env=env, echo=args.verbose)
    listener = Listener(on_closure=show)
    try:
        # Frames are replayed faster than they were recorded: keep every buffered frame.
        config = derived_config(
            default_config_file(),
            {"vpr_encoder": {"max_frame_age_s": 0.0}},
            Path(args.out) / "params.yaml",
        )
        launch_args = {
            "image_model": args.encoder,
            "start_text_nav": "false",
            "config_file": str(config),
        }
        with running_graph(group, launch_args):
            console.print("graph running: vpr_encoder, place_map; playing the sequence ...")
            play_and_wait(group, args.dataset, args.start, args.count, args.rate, args.spacing)
    finally:
        group.stop_all()
        listener.close()
    run = SequenceRun(frames=frames, closures=listener.closures)
    run.metrics = score_closures(run.closures, frames, radius, args.spacing)
    run.metrics.update(dataset=args.dataset, encoder=args.encoder, rate_hz=args.rate)
    paths = write_report(run, Path(args.out), f"lavpr demo: {args.dataset} ({args.encoder})")
    table = Table(title="loop closures, online (real node graph over DDS)", min_width=56)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "frames",
        "revisit_frames",
        "loop_closures",
        "correct",
        "precision",
        "recall",
        "latency_p50_ms",
        "latency_p95_ms",
    ):
        v = run.metrics[key]
        table.add_row(key, f"{v:.3f}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"report: {paths['metrics']}  {paths['plot']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the node graph on a real sequence and score it")
    p.add_argument("--dataset", choices=["nordland", "corridor"], default="nordland")
    p.add_argument("--start", type=int, default=1000, help="first frame of the segment")
    p.add_argument("--count", type=int, default=300, help="frames per traverse")
    p.add_argument("--rate", type=float, default=15.0, help="publishing rate [Hz]")
    p.add_argument("--spacing", type=float, default=2.0, help="route spacing of places [m]")
    p.add_argument(
        "--gt-radius",
        type=float,
        default=0.0,
        help="a closure is correct within this distance [m] (default 1.5 x spacing)",
    )
    p.add_argument("--encoder", default="patchnorm", help="image encoder spec")
    p.add_argument("--out", default="results/demo", help="report folder")
    p.add_argument("--verbose", action="store_true", help="echo the nodes' output")
    p.set_defaults(func=_demo)
