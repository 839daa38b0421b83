"""``lavpr bag``: bags from image sequences, offline bag evaluation, replay into the node graph.

lavpr bag from-images --dataset nordland --start 1000 --count 150 --out bags/nordland_1000
lavpr bag eval bags/nordland_1000                 # offline, no ROS needed
lavpr bag replay bags/nordland_1000 --rate-factor 15   # through the real node graph over DDS
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _from_images(args: argparse.Namespace) -> int:
    from lavpr_ros.bags.writer import (
        dataset_bag_frames,
        default_gt_radius,
        folder_bag_frames,
        write_bag,
        write_sidecar,
    )

    if args.rate <= 0:
        raise ValueError("--rate must be > 0")
    count = args.count if args.count and args.count > 0 else None
    if args.dataset:
        if args.images:
            raise ValueError("give either --dataset or --images, not both")
        travs = [t for t in (args.traverses or "").split(",") if t] or None
        frames = dataset_bag_frames(
            args.dataset, travs, args.start, count, args.rate, args.spacing, args.start_stamp
        )
        aligned = True
    elif args.images:
        frames = folder_bag_frames(
            [Path(p) for p in args.images],
            Path(args.poses) if args.poses else None,
            args.aligned,
            args.start,
            count,
            args.rate,
            args.spacing,
            args.start_stamp,
        )
        aligned = args.aligned
    else:
        raise ValueError("give --dataset NAME or --images DIR (repeatable)")
    name = args.dataset or Path(args.images[0]).name
    out = Path(args.out or f"results/bags/{name}_{args.start}_{len(frames)}")
    radius = args.gt_radius if args.gt_radius > 0 else default_gt_radius(args.dataset, args.spacing)
    write_bag(
        frames,
        out,
        args.storage,
        args.compressed,
        args.image_topic,
        args.pose_topic,
        args.overwrite,
        progress=not args.quiet,
    )
    side = write_sidecar(
        out,
        frames,
        radius,
        {
            "source": args.dataset or [str(p) for p in args.images],
            "traverses": sorted(
                {f.traverse for f in frames}, key=[f.traverse for f in frames].index
            ),
            "start": args.start,
            "count": count,
            "rate_hz": args.rate,
            "spacing_m": args.spacing if aligned else None,
            "poses": "simulated route (core/sequences.route_pose)"
            if aligned
            else (str(args.poses) if args.poses else None),
        },
    )
    n_pose = sum(1 for f in frames if f.pose is not None)
    print(
        f"wrote {out} ({args.storage}): {len(frames)} images "
        f"({'CompressedImage' if args.compressed else 'Image rgb8'}), {n_pose} odometry, "
        f"stamps every {1 / args.rate:g} s; ground truth {side} (radius {radius:g} m)"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from lavpr_ros.bags.evaluate import evaluate_bag
    from lavpr_ros.bags.report import print_table, write_offline_report

    bag = Path(args.bag)
    res = evaluate_bag(
        bag,
        args.image_topic,
        args.pose_topic,
        args.encoder,
        args.config,
        args.gt_radius,
        args.ground_truth,
        args.reorder_window,
        progress=not args.quiet,
        distractor_map=args.distractor_map,
    )
    out = Path(args.out or f"results/bag-eval-{bag.name}")
    paths = write_offline_report(res, out, f"bag eval: {bag.name}")
    print_table({"offline": res.metrics}, f"lavpr bag eval {bag.name} ({res.metrics['encoder']})")
    m = res.metrics
    st = m["stamps"]
    print(
        f"stamps: {st['out_of_order']} out of order, {st['duplicates']} duplicate(s) dropped, "
        f"{st['late_dropped']} too late dropped; frames without pose: {m['frames_without_pose']}"
    )
    for d in m["damaged"]:
        print(
            f"DAMAGED: {d['file']}: stopped after {d['messages_read']} messages ({d['error']}); "
            "results above cover the readable part",
            file=sys.stderr,
        )
    print("report: " + "  ".join(str(p) for p in paths.values()))
    return 3 if m["damaged"] and args.strict else 0


def _replay(args: argparse.Namespace) -> int:
    from lavpr_ros.bags.replay import replay_command

    return replay_command(args)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument("--image-topic", help="image topic (default: auto-detected)")
    p.add_argument("--pose-topic", help="Odometry/PoseStamped topic (default: auto-detected)")
    p.add_argument(
        "--encoder",
        default=None,
        help="image encoder spec (as vpr_encoder; default: vpr_encoder's encoder in the config)",
    )
    p.add_argument("--config", help="parameter YAML (place_map section; default config/lavpr.yaml)")
    p.add_argument(
        "--gt-radius",
        type=float,
        default=None,
        help="a loop closure is correct within this distance [m] "
        "(default: the sidecar's radius, else 3)",
    )
    p.add_argument(
        "--ground-truth", help="ground-truth JSON (default: <bag>.ground_truth.json if present)"
    )
    p.add_argument(
        "--reorder-window",
        type=int,
        default=500,
        help="images buffered to sort out-of-order stamps",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    bag = sub.add_parser("bag", help="rosbag2 tools: from-images, eval, replay")
    bsub = bag.add_subparsers(dest="bag_command", required=True)

    p = bsub.add_parser(
        "from-images",
        help="write an image sequence (dataset or folders) as a rosbag2 bag + ground truth",
        description="Images (Image rgb8 or CompressedImage) and nav_msgs/Odometry into a rosbag2 "
        "bag, ground truth into <bag>.ground_truth.json. CSV columns: file,stamp,x,y[,z]"
        "[,qx,qy,qz,qw] or file,stamp,lat,lon[,alt] (stamp optional).",
    )
    p.add_argument("--dataset", choices=["nordland", "corridor"], help="a dataset of LAVPR_DATA")
    p.add_argument(
        "--traverses", help="comma-separated traverses (default summer,winter/ref,query)"
    )
    p.add_argument("--images", action="append", help="image folder (repeatable: traverses)")
    p.add_argument("--poses", help="CSV of poses or GPS per image file")
    p.add_argument(
        "--aligned", action="store_true", help="folders are frame-aligned: pose them on the route"
    )
    p.add_argument("--start", type=int, default=0, help="first frame of each traverse")
    p.add_argument("--count", type=int, default=0, help="frames per traverse (0: all)")
    p.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="frame rate [Hz]: stamps 1/rate apart (1 = the sequence_player's stamps)",
    )
    p.add_argument("--start-stamp", type=float, default=1000.0, help="first stamp [s]")
    p.add_argument("--spacing", type=float, default=2.0, help="route spacing of places [m]")
    p.add_argument(
        "--gt-radius",
        type=float,
        default=0.0,
        help="radius [m] within which a closure is correct (0: the dataset's own tolerance - "
        "corridor: its ground_truth.json, +-2 frames; else 1.5 x spacing)",
    )
    p.add_argument("--compressed", action="store_true", help="CompressedImage instead of Image")
    p.add_argument(
        "--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage format"
    )
    p.add_argument("--image-topic", help="default /camera/image_raw[/compressed]")
    p.add_argument("--pose-topic", default="/odom", help="odometry topic written")
    p.add_argument("--out", help="bag path (default results/bags/<name>_<start>_<n>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_from_images)

    p = bsub.add_parser(
        "eval",
        help="offline: the nodes' pipeline on a bag, scored (PR, AUC, Recall@K, latency)",
    )
    _common(p)
    p.add_argument("--out", help="report folder (default results/bag-eval-<bagname>)")
    p.add_argument("--strict", action="store_true", help="exit code 3 when the bag is damaged")
    p.add_argument(
        "--distractor-map",
        help="saved map of other places (same encoder, stamped before the bag) the run starts "
        "from; matches to them count as false (city-scale check, docs/scale.md)",
    )
    p.set_defaults(func=_eval)

    p = bsub.add_parser(
        "replay",
        help="play a bag into the running node graph over DDS, record and score its outputs",
    )
    _common(p)
    p.add_argument("--rate-factor", type=float, default=1.0, help="playback speed (1 = real time)")
    p.add_argument("--clock", action="store_true", help="publish /clock; nodes use_sim_time")
    p.add_argument("--no-launch", action="store_true", help="the graph is already running")
    p.add_argument("--record-descriptors", action="store_true", help="also record vpr/descriptor")
    p.add_argument("--no-offline", action="store_true", help="skip the offline side-by-side run")
    p.add_argument(
        "--settle", type=float, default=3.0, help="seconds without new output before stopping"
    )
    p.add_argument("--out", help="report folder (default results/bag-replay-<bagname>)")
    p.add_argument(
        "--prior-map",
        help="saved map place_map starts from (multi-session): closures to its places are scored "
        "by their saved poses (same frame as the bag's ground truth); no offline run",
    )
    p.add_argument("--verbose", action="store_true", help="echo the nodes' output")
    p.add_argument(
        "--pose-graph",
        action="store_true",
        help="replay the odometry drifted, run pose_graph, score its keyframes (ATE/RPE, evo)",
    )
    p.add_argument("--scale-error", type=float, default=0.03, help="odometry scale error")
    p.add_argument(
        "--heading-rw", type=float, default=0.003, help="heading random walk [rad/sqrt(m)]"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the drift")
    p.set_defaults(func=_replay)
