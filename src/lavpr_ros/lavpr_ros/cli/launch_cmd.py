"""``lavpr launch``: the node graph without the ros2 CLI (same description as vpr.launch.py)."""

from __future__ import annotations

import argparse


def _launch(args: argparse.Namespace) -> int:
    from lavpr_ros.graph.launcher import launch, parse_launch_args

    return launch(parse_launch_args(args.args))


def _print_args(_: argparse.Namespace) -> int:
    from lavpr_ros.graph.description import LAUNCH_ARGUMENTS

    for a in LAUNCH_ARGUMENTS:
        print(f"{a.name}:={a.default!r:10}  {a.description}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch",
        help="start the node graph as separate processes (name:=value arguments)",
        description="Start vpr_encoder, place_map and text_nav with the parameters of "
        "config/lavpr.yaml, like `ros2 launch lavpr_ros vpr.launch.py`. Ctrl-C stops all.",
    )
    p.add_argument("args", nargs="*", help="launch arguments, e.g. image_model:=patchnorm")
    p.add_argument("--show-args", action="store_const", const=True, help="list launch arguments")
    p.set_defaults(func=lambda a: _print_args(a) if a.show_args else _launch(a))
