"""Declared parameters with descriptions: one table per node, read back into a dict.

A parameter is either *live* (``Param.live``: a node applies a new value at run time, e.g.
``ros2 param set /place_map loop_closure.min_score 0.5``) or read-only once declared (set it at
start: launch file, YAML, ``--ros-args -p``); rclpy itself refuses a set of a read-only one. A
node with live parameters registers :class:`LiveParameters`: a set is checked (no NaN), then the
node's ``prepare`` builds what the new values mean (configs, policies) - any ValueError refuses
the whole set, with the reason, and nothing changes - and the returned commit installs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    # True: the node applies a new value at run time; False: read-only after start-up.
    live: bool = False


def declare(node: Node, params: list[Param]) -> dict[str, Any]:
    """Declare every parameter (typed by its default; read-only unless live) and return their
    current values."""
    values: dict[str, Any] = {}
    for p in params:
        descriptor = ParameterDescriptor(description=p.description, read_only=not p.live)
        node.declare_parameter(p.name, p.default, descriptor)
        values[p.name] = node.get_parameter(p.name).value
    return values


# prepare(new values, names changed) -> commit: raises ValueError (reason) when they are invalid.
Prepare = Callable[[dict[str, Any], set[str]], Callable[[], None]]


def check_update(
    values: dict[str, Any],
    changes: dict[str, Any],
    live: Iterable[str],
    prepare: Prepare,
) -> tuple[str, Callable[[], None] | None]:
    """('', commit) when ``changes`` (name -> new value) may be applied to ``values``, else
    (reason, None). Nothing is changed here: ``values`` is updated by the caller after commit."""
    live = set(live)
    for name, value in changes.items():
        if name not in live:
            return f"{name} is read-only: it takes effect at start-up only", None
        if _has_nan(value):
            return f"{name} refused: NaN is not a value", None
    try:
        commit = prepare({**values, **changes}, set(changes))
    except (ValueError, TypeError) as exc:
        shown = ", ".join(f"{k}={changes[k]!r}" for k in sorted(changes))
        return f"{shown} refused: {exc}", None
    return "", commit


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list | tuple):
        return any(isinstance(v, float) and math.isnan(v) for v in value)
    return False


class LiveParameters:
    """The node's set-parameters check for its live parameters (see the module docstring).
    ``values`` is the node's parameter dict (``self.p``): it is updated when a set is applied,
    so code reading ``self.p[name]`` at use time sees the new value."""

    def __init__(
        self, node: Node, params: list[Param], values: dict[str, Any], prepare: Prepare
    ) -> None:
        self.node = node
        self.names = {p.name for p in params}
        self.live = {p.name for p in params if p.live}
        self.values = values
        self.prepare = prepare
        node.add_on_set_parameters_callback(self._on_set)

    def _on_set(self, parameters: list[Any]) -> SetParametersResult:
        # Parameters that are not this table's (use_sim_time, ...) are rclpy's business.
        changes = {p.name: p.value for p in parameters if p.name in self.names}
        if not changes:
            return SetParametersResult(successful=True)
        reason, commit = check_update(self.values, changes, self.live, self.prepare)
        if commit is None:
            self.node.get_logger().warning(f"parameter set refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        commit()
        self.values.update(changes)
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(changes.items()))
        self.node.get_logger().info(f"parameters applied: {shown}")
        return SetParametersResult(successful=True)


def require(ok: bool, message: str) -> None:
    """ValueError(message) unless ok: for ``prepare`` functions."""
    if not ok:
        raise ValueError(message)


def positive_period(values: dict[str, Any], name: str, allow_off: bool = False) -> float:
    """A period parameter [s]: finite and > 0 (or <= 0 = off when ``allow_off``)."""
    v = float(values[name])
    require(math.isfinite(v), f"{name} must be finite, got {v}")
    require(allow_off or v > 0, f"{name} must be > 0 [s], got {v}")
    return v


def prepare_periods(setters: dict[str, tuple[Callable[[float], None], bool]]) -> Prepare:
    """``prepare`` for nodes whose live parameters are all periods: name -> (apply(period [s]),
    whether <= 0 = off is allowed)."""

    def prepare(new: dict[str, Any], changed: set[str]) -> Callable[[], None]:
        steps = []
        for name in sorted(changed):
            apply, allow_off = setters[name]
            steps.append((apply, positive_period(new, name, allow_off)))

        def commit() -> None:
            for apply, period in steps:
                apply(period)

        return commit

    return prepare


def table(params: list[Param]) -> list[tuple[str, str, str, str]]:
    """(name, default, 'live' or '', description) rows, for the docs and --help."""
    return [(p.name, repr(p.default), "live" if p.live else "", p.description) for p in params]


def sensor_qos(reliable: bool, depth: int = 100) -> QoSProfile:
    """Sensor inputs: best effort, shallow (sensor-data QoS: a robot wants the newest frame, not
    a queue) — or reliable with a deep history for lossless replays and evaluations. Poses use
    ``POSE_DEPTH``: with 100, a place_map stalled ~2 s on a loaded machine lost odometry of a
    20x replay (20 Hz) and its frames' loop closures came without poses; images keep 100 (a
    deeper image history would hold ~1 MB per queued frame)."""
    if reliable:
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_sensor_data


POSE_DEPTH = 1000


RELIABLE_INPUT = Param(
    "reliable_input",
    False,
    "Subscribe sensor inputs reliably with a deep queue instead of sensor-data QoS (best "
    "effort); for lossless bag replays and evaluations, not for a live robot",
)


# Outputs a late subscriber needs (the described places, the keyframe path, a geo estimate).
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def parse_providers(text: str) -> list[str] | None:
    """The ``providers`` parameter ('cuda,cpu') as a list; None (= automatic) when empty."""
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    return names or None
