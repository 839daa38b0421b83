"""vpr.launch.py and `lavpr launch` start the same graph from one description.

launch/launch_ros are not on PyPI, so vpr.launch.py is executed here against minimal stand-ins
for the few launch classes it uses; they record what the launch file asks for.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from lavpr_ros.graph.description import (
    LAUNCH_ARGUMENTS,
    NODES,
    TOPIC_ARGUMENTS,
    default_config_file,
    remappings,
)
from lavpr_ros.graph.launcher import node_command, parse_launch_args, resolve_args

REPO = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict[str, str]) -> str:
        return context[self.name]


@pytest.fixture
def launch_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mods = {
        "launch": types.ModuleType("launch"),
        "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
    }
    mods["launch"].LaunchDescription = _Recorder
    mods["launch.actions"].DeclareLaunchArgument = _Recorder
    mods["launch.actions"].OpaqueFunction = _Recorder
    mods["launch.actions"].Shutdown = _Recorder
    mods["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    mods["launch_ros.actions"].Node = _Recorder
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("vpr_launch", REPO / "launch" / "vpr.launch.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch_nodes(module: types.ModuleType, overrides: dict[str, str]) -> list[_Recorder]:
    desc = module.generate_launch_description()
    declared, opaque = desc.args[0][:-1], desc.args[0][-1]
    context = {d.args[0]: d.kwargs["default_value"] for d in declared}
    context.update(overrides)
    return opaque.kwargs["function"](context)


def test_launch_file_declares_every_argument(launch_module: types.ModuleType) -> None:
    declared = launch_module.generate_launch_description().args[0][:-1]
    assert [d.args[0] for d in declared] == [a.name for a in LAUNCH_ARGUMENTS]
    assert all(d.kwargs["description"] for d in declared)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"namespace": "robot1", "use_sim_time": "true", "image_model": "patchnorm:32x16:4"},
        {"start_text_nav": "false", "map_path": "/tmp/m", "text_model": "/models/t"},
        {"image_topic": "/front/color/image_raw", "odom_topic": "/robot/odom"},
        {"text_command_topic": "/voice/text", "depth_topic": "/front/depth", "pose_topic": "/amcl"},
    ],
)
def test_launch_file_and_launcher_agree(
    launch_module: types.ModuleType, overrides: dict[str, str]
) -> None:
    nodes = _launch_nodes(launch_module, overrides)
    args = resolve_args(overrides)
    by_name = {spec.name: spec for spec in NODES}
    assert [n.kwargs["name"] for n in nodes] == [
        s.name
        for s in NODES
        if args[s.start_arg] == "true" or (args[s.start_arg] != "false" and s.default_start)
    ]
    for node in nodes:
        kw = node.kwargs
        spec = by_name[kw["name"]]
        cmd = node_command(spec, args)
        # Same executable module, namespace, parameter file, overrides and remappings.
        assert kw["executable"] == spec.executable and cmd[2] == spec.module
        ns = overrides.get("namespace", "")
        assert kw["namespace"] == ns
        assert (f"__ns:=/{ns}" in cmd) if ns else not any(a.startswith("__ns") for a in cmd)
        config, params = kw["parameters"]
        assert config == str(default_config_file()) == cmd[cmd.index("--params-file") + 1]
        cli_params = {
            cmd[i + 1].split(":=")[0]: cmd[i + 1].split(":=")[1]
            for i, a in enumerate(cmd)
            if a == "-p"
        }
        launch_params = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()
        }
        assert launch_params == cli_params
        cli_remaps = [tuple(cmd[i + 1].split(":=")) for i, a in enumerate(cmd) if a == "-r"]
        cli_remaps = [r for r in cli_remaps if not r[0].startswith("__")]
        assert cli_remaps == kw["remappings"] == remappings(spec, args)
        # A required node that exits stops the launch, as `lavpr launch` stops the graph.
        if spec.required:
            assert (
                isinstance(kw["on_exit"], _Recorder) and spec.name in kw["on_exit"].kwargs["reason"]
            )
        else:
            assert kw["on_exit"] is None


def test_launcher_rejects_unknown_arguments() -> None:
    with pytest.raises(ValueError, match="unknown launch argument"):
        resolve_args({"image_modle": "x"})
    with pytest.raises(ValueError, match="name:=value"):
        parse_launch_args(["image_model=patchnorm"])


def test_topic_arguments_remap_every_reader_and_only_when_changed() -> None:
    args = resolve_args({"image_topic": "/front/image", "odom_topic": "odom"})
    by_name = {spec.name: spec for spec in NODES}
    # Every node that reads the camera is remapped; the default name remaps nothing.
    for name in ("vpr_encoder", "place_map", "geo_localizer"):
        assert ("camera/image_raw", "/front/image") in remappings(by_name[name], args)
    assert remappings(by_name["text_nav"], args) == []
    assert not any(src == "odom" for src, _ in remappings(by_name["place_map"], args))
    # Each topic argument is declared with the nodes' own name as its default.
    declared = {a.name: a.default for a in LAUNCH_ARGUMENTS}
    assert all(declared[k] == topic for k, (topic, _) in TOPIC_ARGUMENTS.items())
