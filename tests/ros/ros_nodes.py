"""What the node tests share: a node's newest diagnostics, and place_map started as a process."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray


class Diag:
    """The newest /diagnostics status of one node: {'level', 'message', key: value, ...}
    ({} before the node's first one). ``msgs`` is the received list (clear it to wait for a
    fresh status)."""

    def __init__(self, client: Any, node: str) -> None:
        self.msgs = client.subscribe(DiagnosticArray, "/diagnostics")
        self.node = node

    def __call__(self) -> dict[str, str]:
        for arr in reversed(list(self.msgs)):
            for st in arr.status:
                if st.name.endswith("/" + self.node):
                    return {
                        "level": str(st.level[0]),
                        "message": st.message,
                        **{kv.key: kv.value for kv in st.values},
                    }
        return {}


def start_place_map(procs: Any, name: str, *params: str, ready: str = "[place_map] ready") -> Any:
    """place_map as its own process with fast diagnostics and keyframes plus ``params``
    ('name:=value'), once it printed ``ready``."""
    args = ["-m", "lavpr_ros.nodes.place_map", "--ros-args"]
    base = ("diagnostics_period_s:=0.3", "loop_closure.keyframe_max_interval_s:=0.5")
    for p in (*base, *params):
        args += ["-p", p]
    node = procs.start_python(name, args)
    node.wait_for_line(ready, timeout=60)
    return node
