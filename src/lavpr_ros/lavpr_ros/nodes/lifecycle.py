"""Managed (lifecycle) nodes, as Nav2 expects, that still run from a plain launch.

configure loads what the node needs (models, maps) and validates it; activate starts the inputs
(subscriptions); deactivate stops them; cleanup releases what configure loaded; shutdown does the
last work (e.g. save). With ``autostart`` (default true) the node walks configure -> activate by
itself at start, so ``ros2 launch`` / ``lavpr launch`` without a lifecycle manager just run it;
with ``autostart:=false`` it waits, unconfigured, for the lifecycle services
(``/<node>/change_state``), e.g. from nav2_lifecycle_manager.
"""

from __future__ import annotations

from typing import Any

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
    """The shutdown transition at exit (from whatever state the node is in); when the ROS
    context is already gone (SIGTERM), the node's own shutdown work runs directly."""
    if state_label(node) == "finalized":
        return
    try:
        node.trigger_shutdown()
    except Exception:
        finish = getattr(node, "finish", None)
        if callable(finish):
            finish()
