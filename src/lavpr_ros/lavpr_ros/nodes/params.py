"""Declared parameters with descriptions: one table per node, read back into a dict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str


def declare(node: Node, params: list[Param]) -> dict[str, Any]:
    """Declare every parameter (typed by its default) and return their current values."""
    values: dict[str, Any] = {}
    for p in params:
        node.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description))
        values[p.name] = node.get_parameter(p.name).value
    return values


def table(params: list[Param]) -> list[tuple[str, str, str]]:
    """(name, default, description) rows, for the README and --help."""
    return [(p.name, repr(p.default), p.description) for p in params]


def sensor_qos(reliable: bool) -> QoSProfile:
    """Sensor inputs: best effort, shallow (sensor-data QoS: a robot wants the newest frame, not
    a queue) — or reliable with a deep history for lossless replays and evaluations."""
    if reliable:
        return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_sensor_data


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
