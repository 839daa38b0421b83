"""Command-line options built from the training config dataclasses.

A config field is the single place where an option's name, type and default live: the parser
gets ``--field-name`` from it and the command builds the config back from the parsed namespace,
so a new field or a changed default cannot drift between the dataclass and its command.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_SCALARS = (int, float, str)


def span(value: str) -> tuple[int, int] | None:
    """'A:B' -> (A, B); '' -> None (an index range such as training frames)."""
    if not value:
        return None
    a, sep, b = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected A:B, got {value!r}")
    return int(a), int(b)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return tp, False


def _option(name: str, rename: Mapping[str, str]) -> str:
    return "--" + rename.get(name, name).replace("_", "-")


def config_fields(cls: type, names: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The dataclass fields that can be options (scalars, optionals of scalars, int pairs)."""
    hints = typing.get_type_hints(cls)
    wanted = None if names is None else list(names)
    out = []
    for f in dataclasses.fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        usable = tp in (*_SCALARS, bool) or typing.get_origin(tp) is tuple
        if not usable:
            if wanted is not None:
                raise TypeError(f"{cls.__name__}.{f.name} ({tp}) cannot be a command-line option")
            continue
        out.append(f)
    if wanted is not None:
        unknown = set(wanted) - {f.name for f in out}
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return out


def add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    names: Iterable[str] | None = None,
    *,
    rename: Mapping[str, str] | None = None,
    help: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    converters: Mapping[str, Callable[[str], Any]] | None = None,
    unset: bool = False,
) -> list[str]:
    """Add ``--<field>`` for the config's fields (all usable ones, or ``names``); returns the
    field names added. ``defaults`` replaces a field's default for this command; ``unset``
    leaves every default None (a YAML config file supplies them, the flags override it);
    ``converters`` parses a field from one string (e.g. :func:`span`)."""
    rename, help, defaults = rename or {}, help or {}, defaults or {}
    converters = converters or {}
    hints = typing.get_type_hints(cls)
    added = []
    for f in config_fields(cls, names):
        tp, optional = _unwrap_optional(hints[f.name])
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        shown_default = default
        if unset:
            default = None
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        text = help.get(f.name, f.name.replace("_", " "))
        if unset:
            # None = not given: the config file's value, else the dataclass default, applies.
            if typing.get_origin(tp) is tuple:
                items = typing.get_args(tp)
                kwargs.update(type=items[0], nargs=len(items))
            elif tp is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = converters.get(f.name, tp)
            text += f" (default: the config file's, else {shown_default})"
        elif f.name in converters:
            kwargs["type"] = converters[f.name]
            shown = default if not isinstance(default, tuple) else ":".join(map(str, default))
            kwargs["default"] = default
            text += f" (default: {shown if shown is not None else 'none'})"
        elif tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            text += " (default: %(default)s)"
        elif typing.get_origin(tp) is tuple:
            items = typing.get_args(tp)
            kwargs.update(type=items[0], nargs=len(items))
            text += " (default: %(default)s)"
        else:
            kwargs["type"] = tp
            if optional and default is None:
                text += " (default: none)"
            else:
                text += " (default: %(default)s)"
        parser.add_argument(_option(f.name, rename), help=text, **kwargs)
        added.append(f.name)
    return added


def config_values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """{field: parsed value} for the given fields (tuples from nargs lists)."""
    out = {}
    for name in names:
        value = getattr(args, name)
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def config_from_args(cls: type, args: argparse.Namespace, names: Iterable[str], **extra: Any):
    """``cls`` built from the parsed options of ``names`` plus ``extra`` fields."""
    return cls(**config_values(args, names), **extra)


def add_export_args(
    parser: argparse.ArgumentParser, models: str, default_id: str, tolerance: float | None = None
) -> None:
    """--out, --model-id, --force (and --tolerance): the options every export shares."""
    parser.add_argument("--out", default=models, help="models folder (default: %(default)s)")
    parser.add_argument("--model-id", default=default_id, help="exported id (default: %(default)s)")
    if tolerance is not None:
        parser.add_argument(
            "--tolerance",
            type=float,
            default=tolerance,
            help="ONNX parity limit (default: %(default)s)",
        )
    parser.add_argument("--force", action="store_true", help="overwrite an existing export")
