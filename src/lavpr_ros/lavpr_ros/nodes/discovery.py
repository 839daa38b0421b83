"""Who reads a topic: wait for the *right* reader, not for any reader.

A publisher that counts matched subscriptions starts as soon as anyone listens. In this graph
``place_map`` subscribes the camera too (keyframe features for verification) and it comes up long
before ``vpr_encoder`` has loaded its ONNX models, so a replay that waited for "one subscriber"
lost the first seconds of frames to nobody. Players wait for the named nodes instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any


def reader_nodes(node: Any, topic: str) -> set[str]:
    """Names of the nodes subscribed to ``topic`` (a resolved name, e.g. pub.topic_name)."""
    return {info.node_name for info in node.get_subscriptions_info_by_topic(topic)}


def missing_readers(node: Any, wanted: Mapping[str, Iterable[str]]) -> list[str]:
    """'topic (node)' for every wanted reader not subscribed yet; empty when all are."""
    missing = []
    for topic, names in wanted.items():
        have = reader_nodes(node, topic)
        missing += [f"{topic} ({n})" for n in names if n not in have]
    return missing


def wait_for_readers(
    node: Any, wanted: Mapping[str, Iterable[str]], timeout: float, settle_s: float = 0.5
) -> None:
    """Block until every wanted node reads its topic, then ``settle_s`` for the reverse match
    (a reliable reader must also have matched the writer). Raises TimeoutError naming what is
    missing. ``node`` must be spun elsewhere or not at all (graph queries need no spinning)."""
    deadline = time.monotonic() + timeout
    while missing := missing_readers(node, wanted):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no subscriber after {timeout:.0f} s on {', '.join(missing)}")
        time.sleep(0.05)
    time.sleep(settle_s)
