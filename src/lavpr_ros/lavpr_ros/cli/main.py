"""Entry point of the ``lavpr`` command; each sub-command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules under lavpr_ros.cli that expose ``register(subparsers)``; each adds its sub-commands and
# sets ``func`` (taking the parsed args, returning an exit code) on its parsers.
COMMAND_MODULES = [
    "data_cmd",
    "eval_images",
    "bench_cmd",
    "launch_cmd",
    "demo_cmd",
    "bag_cmd",
    "map_cmd",
    "geo_cmd",
    "degrade_cmd",
    "posegraph_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavpr", description="lavpr_ros tools: evaluation, bags, benchmarks, data, maps."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"lavpr_ros.cli.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"lavpr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
