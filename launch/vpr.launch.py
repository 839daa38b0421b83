"""Start the lavpr_ros node graph: `ros2 launch lavpr_ros vpr.launch.py [arg:=value ...]`.

The graph (nodes, parameters, remappings) comes from lavpr_ros.graph.description, the same
description that `lavpr launch` uses on machines without the ros2 CLI.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from lavpr_ros.graph.description import (
    LAUNCH_ARGUMENTS,
    default_config_file,
    nodes_to_start,
    param_overrides,
    remappings,
)


def _nodes(context, *_, **__):
    args = {a.name: LaunchConfiguration(a.name).perform(context) for a in LAUNCH_ARGUMENTS}
    config = args["config_file"] or str(default_config_file())
    return [
        Node(
            package="lavpr_ros",
            executable=spec.executable,
            name=spec.name,
            namespace=args["namespace"],
            parameters=[config, param_overrides(spec, args)],
            remappings=remappings(spec, args),
            output="screen",
            emulate_tty=True,
            # A required node that exits (e.g. a model that is not found) stops the launch.
            on_exit=Shutdown(reason=f"required node {spec.name} exited") if spec.required else None,
        )
        for spec in nodes_to_start(args)
    ]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
        for a in LAUNCH_ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
