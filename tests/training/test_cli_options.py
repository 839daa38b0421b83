"""lavpr-train's options come from the config dataclasses: every option shows its default, the
parsed defaults rebuild the dataclass defaults, and flags land in the config they name."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

from lavpr_train.cli import build_parser
from lavpr_train.cliargs import add_config_args, config_from_args, span


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    raise AssertionError("no sub-commands")


def test_every_option_has_help_and_shows_its_default() -> None:
    missing, no_default = [], []
    for name, p in _subparsers(build_parser()).items():
        for a in p._actions:
            if not a.option_strings or isinstance(a, argparse._HelpAction):
                continue
            if not a.help:
                missing.append(f"{name} {a.option_strings[-1]}")
            elif (
                a.help != argparse.SUPPRESS
                and a.default not in (None, argparse.SUPPRESS)
                and not isinstance(a.default, bool)
                and not a.required
                and "default" not in str(a.help).lower()
            ):
                no_default.append(f"{name} {a.option_strings[-1]}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"defaults not shown: {no_default}"


def test_seq_train_defaults_are_the_dataclass_defaults() -> None:
    from lavpr_train.sequence.model import SeqNetConfig
    from lavpr_train.sequence.train import SeqTrainConfig

    args = build_parser().parse_args(["seq-train"])
    model = config_from_args(SeqNetConfig, args, args.model_fields)
    cfg = config_from_args(SeqTrainConfig, args, args.train_fields, out=args.run, model=model)
    assert model == SeqNetConfig()
    assert cfg == SeqTrainConfig(out="runs/seqnet")

    args = build_parser().parse_args(
        ["seq-train", "--mode", "centerOnly", "--seq-len", "6", "--epochs", "2", "--lr", "0.01"]
    )
    model = config_from_args(SeqNetConfig, args, args.model_fields)
    cfg = config_from_args(SeqTrainConfig, args, args.train_fields, out=args.run, model=model)
    assert (model.mode, model.seq_len, cfg.epochs, cfg.lr) == ("centerOnly", 6, 2, 0.01)
    with pytest.raises(ValueError, match="mode must be one of"):  # the dataclass validates
        config_from_args(
            SeqNetConfig, build_parser().parse_args(["seq-train", "--mode", "x"]), ["mode"]
        )


def test_train_head_and_posetext_cover_every_config_field() -> None:
    from lavpr_train.posetext.train import PTTrainConfig
    from lavpr_train.train_head import TrainConfig as HeadConfig

    args = build_parser().parse_args(["train-head", "--gap", "3", "--cache", "/tmp/f.npz"])
    cfg = config_from_args(HeadConfig, args, args.config_fields)
    assert cfg == dataclasses.replace(HeadConfig(), gap=3, cache="/tmp/f.npz")
    assert set(args.config_fields) == {f.name for f in dataclasses.fields(HeadConfig)}

    args = build_parser().parse_args(["posetext-train", "--batch", "32"])
    cfg = config_from_args(PTTrainConfig, args, args.train_fields, out=args.run)
    assert cfg.batch == 32 and cfg.epochs == PTTrainConfig.epochs


def test_train_flags_override_only_what_is_given() -> None:
    args = build_parser().parse_args(["train", "--epochs", "3", "--no-progress"])
    given = {n: getattr(args, n) for n in args.train_fields if getattr(args, n) is not None}
    assert given == {"epochs": 3, "progress": False}
    args = build_parser().parse_args(["train", "--input-size", "64", "96", "--head-dim", "32"])
    model = {n: getattr(args, n) for n in args.model_fields if getattr(args, n) is not None}
    assert model == {"input_size": [64, 96], "head_dim": 32}


def test_lang_commands_parse_ranges() -> None:
    args = build_parser().parse_args(["lang-align", "--train-frames", "5:20"])
    assert args.train_frames == (5, 20)
    assert build_parser().parse_args(["lang-align"]).train_frames == (0, 55)
    assert build_parser().parse_args(["lang-align", "--train-frames", ""]).train_frames is None
    assert build_parser().parse_args(["lang-fusion"]).train_queries == (0, 55)
    with pytest.raises(argparse.ArgumentTypeError):
        span("12")


def test_unusable_field_is_refused() -> None:
    @dataclasses.dataclass
    class Cfg:
        table: dict = dataclasses.field(default_factory=dict)
        n: int = 1

    p = argparse.ArgumentParser()
    assert add_config_args(p, Cfg) == ["n"]  # dicts are skipped when not asked for
    with pytest.raises(TypeError, match="cannot be a command-line option"):
        add_config_args(argparse.ArgumentParser(), Cfg, ["table"])
