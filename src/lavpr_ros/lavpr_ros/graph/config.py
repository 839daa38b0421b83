"""Read node parameters from the ROS parameter YAML without ROS (offline runs use the same file)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def node_parameters(config_file: str | Path, node: str) -> dict[str, Any]:
    """Flattened ros__parameters of ``node`` (keys like ``loop_closure.k``); wildcard keys
    (``/**``, ``/**/node``) are merged in the order ROS applies them (generic first)."""
    raw = yaml.safe_load(Path(config_file).read_text()) or {}
    params: dict[str, Any] = {}
    for key in ("/**", f"/**/{node}", node, f"/{node}"):
        section = raw.get(key)
        if isinstance(section, dict):
            params.update(_flatten(section.get("ros__parameters", {}) or {}))
    return params


def dataclass_from_params(cls: type, params: dict[str, Any], prefix: str) -> Any:
    """Build a config dataclass from ``prefix.field`` parameters; negative numbers mean None
    for fields whose default is None (ROS parameters have no None)."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if key not in params:
            continue
        v = params[key]
        if f.default is None and isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
            v = None
        if isinstance(f.default, tuple) and isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)
