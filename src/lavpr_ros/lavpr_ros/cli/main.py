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
    "text_cmd",
    "posegraph_cmd",
]


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless its help already states one or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is argparse.SUPPRESS
            or isinstance(action.default, bool)
            or action.required
        ):
            return text
        return super()._get_help_string(action)


def all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """This parser and every sub-command parser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += all_parsers(child)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavpr", description="lavpr_ros tools: evaluation, bags, benchmarks, data, maps."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"lavpr_ros.cli.{name}")
        module.register(sub)
    for p in all_parsers(parser):  # every --help shows defaults
        p.formatter_class = DefaultsFormatter
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
