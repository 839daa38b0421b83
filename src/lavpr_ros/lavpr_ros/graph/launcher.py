"""`lavpr launch`: start the graph as separate node processes, as ros2 launch would.

Command lines are built from lavpr_ros.graph.description, so the nodes get the same names,
namespace, parameter file, parameter overrides and remappings as with launch/vpr.launch.py.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Mapping

from lavpr_ros.graph.description import (
    LAUNCH_ARGUMENTS,
    NodeSpec,
    default_config_file,
    nodes_to_start,
    param_overrides,
    remappings,
)
from lavpr_ros.graph.processes import ProcessGroup


def _ros_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_args(overrides: Mapping[str, str]) -> dict[str, str]:
    known = {a.name: a.default for a in LAUNCH_ARGUMENTS}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown launch argument(s) {unknown}; known: {', '.join(sorted(known))}")
    args = {**known, **overrides}
    if not args["config_file"]:
        args["config_file"] = str(default_config_file())
    return args


def node_command(spec: NodeSpec, args: Mapping[str, str]) -> list[str]:
    """The command line of one node (python -m module --ros-args ...)."""
    cmd = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    ns = args.get("namespace", "").strip("/")
    if ns:
        cmd += ["-r", f"__ns:=/{ns}"]
    cmd += ["--params-file", args["config_file"]]
    for key, value in param_overrides(spec, dict(args)).items():
        cmd += ["-p", f"{key}:={_ros_value(value)}"]
    for src, dst in remappings(spec, dict(args)):
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


def parse_launch_args(items: list[str]) -> dict[str, str]:
    """``name:=value`` pairs, as ros2 launch takes them."""
    out: dict[str, str] = {}
    for item in items:
        if ":=" not in item:
            raise ValueError(f"launch arguments look like name:=value, got {item!r}")
        key, value = item.split(":=", 1)
        out[key.strip()] = value
    return out


def launch(overrides: Mapping[str, str], env: Mapping[str, str] | None = None) -> int:
    """Start the graph and supervise it until Ctrl-C/SIGTERM or until every node has exited."""
    args = resolve_args(overrides)
    specs = nodes_to_start(args)
    if not specs:
        print("lavpr launch: no node selected", file=sys.stderr)
        return 2
    group = ProcessGroup(env=env, echo=True)
    stopping = False
    failed_required: list[str] = []

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    old = signal.signal(signal.SIGTERM, _stop)
    # Ctrl-C must stop the graph even if this process was started with SIGINT ignored.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for spec in specs:
            group.start(spec.name, node_command(spec, args))
        print(f"lavpr launch: started {', '.join(s.name for s in specs)}", flush=True)
        required = {s.name for s in specs if s.required}
        reported: set[str] = set()
        while not stopping:
            for proc in group.procs:
                code = proc.popen.poll()
                if code is None or proc.name in reported:
                    continue
                reported.add(proc.name)
                if proc.name in required:
                    print(
                        f"lavpr launch: REQUIRED node {proc.name} exited with code {code}: "
                        "stopping the graph",
                        file=sys.stderr,
                        flush=True,
                    )
                    failed_required.append(proc.name)
                    stopping = True
                else:
                    print(
                        f"lavpr launch: node {proc.name} exited with code {code}: the graph runs "
                        f"on WITHOUT it (degraded)",
                        file=sys.stderr,
                        flush=True,
                    )
            if len(reported) == len(group.procs):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        print("lavpr launch: stopping", flush=True)
        codes = group.stop_all()
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
    failed = {n: c for n, c in codes.items() if c not in (0, None, -2, 130)}
    return 1 if failed or failed_required else 0
