"""Common main(): init, spin until Ctrl-C/SIGTERM, clean shutdown (the node's own hook first)."""

from __future__ import annotations

import os
import re
import signal
import sys
import traceback
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node

from lavpr_ros.nodes.lifecycle import start_managed, stop_managed


def _label(factory: Callable[[], Node]) -> str:
    """'vpr_encoder' for VprEncoderNode: the node's default name, for start-up errors."""
    name = getattr(factory, "__name__", "node").removesuffix("Node")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """Exit code 1, with one clear line and no traceback, when the node cannot start (a model
    or map that is missing or broken, a bad parameter): launchers then see a failed node."""
    rclpy.init(args=args if args is not None else sys.argv)
    # SIGTERM (from a process manager) shuts down like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    node: Node | None = None
    try:
        try:
            node = factory()
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as exc:
            print(f"[{_label(factory)}] cannot start: {exc}", file=sys.stderr, flush=True)
            if os.environ.get("LAVPR_DEBUG"):
                traceback.print_exc()
            rclpy.try_shutdown()
            sys.exit(1)
        if isinstance(node, LifecycleNode):
            try:
                start_managed(node)  # prints "ready" on activation
            except RuntimeError as exc:
                print(f"[{node.get_name()}] cannot start: {exc}", file=sys.stderr, flush=True)
                node.destroy_node()
                node = None
                rclpy.try_shutdown()
                sys.exit(1)
        else:
            print(f"[{node.get_name()}] ready", flush=True)
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if isinstance(node, LifecycleNode):
                stop_managed(node)
            else:
                shutdown = getattr(node, "on_shutdown", None)
                if callable(shutdown):
                    shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
