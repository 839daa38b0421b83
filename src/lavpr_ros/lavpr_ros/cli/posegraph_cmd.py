"""``lavpr posegraph eval`` (drifted vs corrected trajectories of a bag) and ``bench``."""

from __future__ import annotations

import argparse
import json


def _eval(args: argparse.Namespace) -> int:
    from lavpr_ros.bags.pose_graph_eval import DriftModel, evaluate_pose_graph

    model = DriftModel(args.scale_error, args.heading_rw, args.seed)
    r = evaluate_pose_graph(args.bag, args.out, model, args.false_closures, config_file=args.config)
    for name, m in r["runs"].items():
        print(
            f"{name:28s} ATE rmse {m['ate_rmse_m']:8.2f} m  median {m['ate_median_m']:8.2f} m  "
            f"RPE rmse {m['rpe_rmse_m']:6.3f} m  median {m['rpe_median_m']:6.3f} m"
        )
    print(
        f"keyframes {r['keyframes']}, closures {r['closures']} ({r['closures_correct']} correct), "
        f"false closures injected {r['false_closures_injected']}, rejected "
        f"{r['graph_false_closures']['loops_rejected']}"
    )
    print(
        f"corrected/drifted ATE {r['ate_ratio_corrected_to_drifted']:.2f}, "
        f"false/clean ATE {r['ate_ratio_false_to_clean']:.2f}; report in {args.out}"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from lavpr_ros.bags.pose_graph_eval import bench

    print(json.dumps(bench(args.keyframes, args.loop_every), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("posegraph", help="pose graph evaluation and benchmark")
    s = p.add_subparsers(dest="posegraph_command", required=True)
    e = s.add_parser("eval", help="ATE/RPE of drifted vs pose-graph-corrected odometry (evo)")
    e.add_argument("bag", help="bag with images and odometry (e.g. the demo bag)")
    e.add_argument("--out", default="results/pose_graph", help="report folder (JSON + PNG)")
    e.add_argument("--scale-error", type=float, default=0.03, help="odometry scale error")
    e.add_argument(
        "--heading-rw", type=float, default=0.003, help="heading random walk [rad/sqrt(m)]"
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--false-closures", type=int, default=10, help="injected false closures")
    e.add_argument("--config", help="parameter YAML (default config/lavpr.yaml)")
    e.set_defaults(func=_eval)
    b = s.add_parser("bench", help="optimisation time per keyframe")
    b.add_argument("--keyframes", type=int, default=2000)
    b.add_argument("--loop-every", type=int, default=10)
    b.set_defaults(func=_bench)
