"""Managed (lifecycle) nodes, as Nav2 expects, that still run from a plain launch.

configure loads what the node needs (models, maps) and validates it; activate starts the inputs
(subscriptions); deactivate stops them; cleanup releases what configure loaded; shutdown does the
last work (e.g. save). With ``autostart`` (default true) the node walks configure -> activate by
itself at start, so ``ros2 launch`` / ``lavpr launch`` without a lifecycle manager just run it;
with ``autostart:=false`` it waits, unconfigured, for the lifecycle services
(``/<node>/change_state``), e.g. from nav2_lifecycle_manager.
"""

from __future__ import annotations

import contextlib
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from lavpr_ros.nodes.params import Param

AUTOSTART = Param(
    "autostart",
    True,
    "Configure and activate at start; false = stay unconfigured until a lifecycle manager (or "
    "ros2 lifecycle set) drives the transitions",
)


def state_label(node: Any) -> str:
    """'unconfigured', 'inactive', 'active' or 'finalized'."""
    return str(node._state_machine.current_state[1])


def start_managed(node: Any) -> None:
    """Run configure -> activate when the node's ``autostart`` is on. Raises RuntimeError with
    the node's reason when configure fails (the runner turns it into 'cannot start')."""
    if not node.get_parameter("autostart").value:
        node.get_logger().info("autostart is false: unconfigured, waiting for configure")
        print(f"[{node.get_name()}] unconfigured: waiting for lifecycle transitions", flush=True)
        return
    node.trigger_configure()
    if state_label(node) != "inactive":
        raise RuntimeError(getattr(node, "failure", "") or "configure failed")
    node.trigger_activate()
    if state_label(node) != "active":
        raise RuntimeError(getattr(node, "failure", "") or "activate failed")


def stop_managed(node: Any) -> None:
    """The shutdown transition at exit. rclpy may already have started it when the context
    went down (Ctrl-C, SIGTERM), and then ROS calls can fail: the node's own last work
    (``finish``: e.g. saving the map) runs directly in any case, once."""
    context_ok = bool(getattr(node, "context", None) and node.context.ok())
    if context_ok and state_label(node) not in ("finalized", "shuttingdown"):
        with contextlib.suppress(Exception):
            node.trigger_shutdown()
    finish = getattr(node, "finish", None)
    if callable(finish):
        finish()


class ManagedNode(LifecycleNode):
    """What the managed nodes share: ``self.inputs`` (subscriptions, timers) are made by the
    node's activate and removed by deactivate; cleanup and shutdown call ``release`` (what
    configure loaded). Subclasses implement on_configure, on_activate and release."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.inputs: list[Any] = []
        self._finished = False

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.finish()
        return TransitionCallbackReturn.SUCCESS

    def finish(self) -> None:
        """Last work at exit, once: inputs off (best effort: the ROS context may be gone),
        resources released (e.g. the map saved)."""
        if self._finished:
            return
        self._finished = True
        try:
            self.stop_inputs()
        except Exception:
            self.inputs = []
        self.release()

    def stop_inputs(self) -> None:
        for handle in self.inputs:
            if hasattr(handle, "cancel"):  # a timer
                handle.cancel()
                self.destroy_timer(handle)
            else:
                self.destroy_subscription(handle)
        self.inputs = []
        self.inputs_stopped()

    def inputs_stopped(self) -> None:
        """Drop what waited for the inputs (queued frames, pending commands)."""

    def release(self) -> None:
        """Release what configure loaded."""
