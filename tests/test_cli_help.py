"""Every `lavpr` command's --help states each option's default (and the parser accepts what the
help advertises)."""

from __future__ import annotations

import argparse

from lavpr_ros.cli.main import all_parsers, build_parser


def test_every_option_has_help_and_its_default_is_shown() -> None:
    parsers = all_parsers(build_parser())
    assert len(parsers) > 20
    missing, no_default = [], []
    for p in parsers:
        text = " ".join(p.format_help().split())
        for a in p._actions:
            if not a.option_strings or isinstance(a, argparse._HelpAction):
                continue
            if not a.help:
                missing.append(f"{p.prog} {a.option_strings[-1]}")
            elif (
                a.default not in (None, argparse.SUPPRESS)
                and not isinstance(a.default, bool)
                and not a.required
                and "default" not in " ".join(str(a.help).split()).lower()
                and f"(default: {a.default})" not in text
            ):
                no_default.append(f"{p.prog} {a.option_strings[-1]}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"defaults not shown: {no_default}"


def test_bench_core_accepts_the_sizes_its_help_shows() -> None:
    from lavpr_ros.bench import core as bench_core

    parser = build_parser()
    core = next(p for p in all_parsers(parser) if p.prog == "lavpr bench core")
    assert "1k,10k,100k,1M" in core.format_help()
    args = parser.parse_args(["bench", "core", "--sizes", "1k,10k,100k,1M"])
    assert bench_core._parse_sizes(args) == [1_000, 10_000, 100_000, 1_000_000]
