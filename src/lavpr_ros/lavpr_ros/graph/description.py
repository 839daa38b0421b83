"""The node graph, described once.

Both ``launch/vpr.launch.py`` (for ROS installations with launch_ros) and ``lavpr launch`` (the
project's own launcher, for machines without the ros2 CLI) are built from this description, so the
two start the same nodes with the same parameters and remappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph."""

    name: str
    executable: str  # console script installed in lib/lavpr_ros (launch_ros Node executable)
    module: str  # python module with main(), used by `lavpr launch`
    start_arg: str  # launch argument (bool) that starts or skips it
    default_start: bool = True
    # Launch argument -> node parameter that it overrides when non-empty.
    arg_params: dict[str, str] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    # Topic launch arguments (TOPIC_ARGUMENTS) that remap this node's inputs when set.
    topic_args: tuple[str, ...] = ()
    # A required node that exits stops the whole graph (nothing works without it); an optional
    # one leaves the graph running, degraded, with a loud message.
    required: bool = False


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="vpr_encoder",
        executable="vpr_encoder",
        module="lavpr_ros.nodes.vpr_encoder",
        start_arg="start_vpr_encoder",
        arg_params={"image_model": "encoder", "autostart": "autostart"},
        topic_args=("image_topic", "compressed_image_topic"),
        required=True,
    ),
    NodeSpec(
        name="place_map",
        executable="place_map",
        module="lavpr_ros.nodes.place_map",
        start_arg="start_place_map",
        arg_params={
            "map_path": "map_path",
            "text_model": "text_model",
            "maps_root": "maps_root",
            "autostart": "autostart",
        },
        topic_args=(
            "image_topic",
            "camera_info_topic",
            "depth_topic",
            "odom_topic",
            "pose_topic",
            "pose_cov_topic",
        ),
        required=True,
    ),
    NodeSpec(
        name="text_nav",
        executable="text_nav",
        module="lavpr_ros.nodes.text_nav",
        start_arg="start_text_nav",
        arg_params={"text_model": "text_model", "autostart": "autostart"},
        topic_args=("text_command_topic",),
    ),
    NodeSpec(
        name="geo_localizer",
        executable="geo_localizer",
        module="lavpr_ros.nodes.geo_localizer",
        start_arg="start_geo_localizer",
        default_start=False,
        arg_params={"geo_base_url": "base_url"},
        topic_args=("image_topic", "compressed_image_topic"),
    ),
    NodeSpec(
        name="pose_graph",
        executable="pose_graph",
        module="lavpr_ros.nodes.pose_graph",
        start_arg="start_pose_graph",
        default_start=False,
        arg_params={"map_path": "map_path"},
        topic_args=("odom_topic", "pose_topic"),
    ),
)


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


# Input topics a robot names differently: launch argument -> (the nodes' topic, what it carries).
# The default is the nodes' own name (no remapping); any other value remaps every node reading it.
TOPIC_ARGUMENTS: dict[str, tuple[str, str]] = {
    "image_topic": ("camera/image_raw", "Camera images (sensor_msgs/Image)"),
    "compressed_image_topic": (
        "camera/image_raw/compressed",
        "Compressed camera images (sensor_msgs/CompressedImage)",
    ),
    "camera_info_topic": ("camera/camera_info", "Camera intrinsics (verification)"),
    "depth_topic": ("camera/depth/image_raw", "Depth image aligned with the camera (metric scale)"),
    "odom_topic": ("odom", "Odometry (nav_msgs/Odometry; place_map pose_source odom)"),
    "pose_topic": ("pose", "Pose (geometry_msgs/PoseStamped; place_map pose_source pose)"),
    "pose_cov_topic": (
        "pose_cov",
        "Localiser/SLAM pose (geometry_msgs/PoseWithCovarianceStamped, e.g. amcl_pose; "
        "place_map pose_source pose_cov)",
    ),
    "text_command_topic": ("text_command", "Text instructions for text_nav (std_msgs/String)"),
}

LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("config_file", "", "Parameter YAML (default: config/lavpr.yaml of lavpr_ros)"),
    LaunchArgument("namespace", "", "Namespace for all nodes (e.g. robot1)"),
    LaunchArgument("use_sim_time", "false", "Use /clock (bag replay with --clock)"),
    LaunchArgument("image_model", "", "Image encoder: 'patchnorm' or a model manifest path"),
    LaunchArgument("text_model", "", "Text encoder manifest path (text_nav, query_places)"),
    LaunchArgument("map_path", "", "Place map directory to load at start and save to"),
    LaunchArgument("maps_root", "", "Folder of country/city-tagged maps (geo map selection)"),
    LaunchArgument("geo_base_url", "", "GLOBE server URL incl. /v1 (geo_localizer)"),
    LaunchArgument(
        "autostart",
        "",
        "Managed nodes (vpr_encoder, place_map, text_nav) configure and activate themselves: "
        "true/false, empty = the parameter file's value (true); false = a lifecycle manager "
        "drives them",
    ),
    *(
        LaunchArgument(n.start_arg, "true" if n.default_start else "false", f"Start {n.name}")
        for n in NODES
    ),
    *(
        LaunchArgument(name, topic, f"{what}; remaps '{topic}' of every node reading it")
        for name, (topic, what) in TOPIC_ARGUMENTS.items()
    ),
)


def default_config_file() -> Path:
    """config/lavpr.yaml from the installed share directory, or from the checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory("lavpr_ros")) / "config" / "lavpr.yaml"
        if path.is_file():
            return path
    except Exception:
        pass
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "config" / "lavpr.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("config/lavpr.yaml not found (is lavpr_ros built/installed?)")


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def param_overrides(spec: NodeSpec, args: dict[str, str]) -> dict[str, object]:
    """Parameters a node gets from launch arguments (beyond its YAML section)."""
    params: dict[str, object] = {"use_sim_time": parse_bool(args.get("use_sim_time", "false"))}
    for arg, param in spec.arg_params.items():
        if args.get(arg):
            params[param] = args[arg]
    return params


def remappings(spec: NodeSpec, args: dict[str, str]) -> list[tuple[str, str]]:
    """The node's fixed remappings plus those of the topic arguments set to another name."""
    out = list(spec.remappings)
    for arg in spec.topic_args:
        topic = TOPIC_ARGUMENTS[arg][0]
        value = (args.get(arg) or "").strip()
        if value and value != topic:
            out.append((topic, value))
    return out


def nodes_to_start(args: dict[str, str]) -> list[NodeSpec]:
    defaults = {a.name: a.default for a in LAUNCH_ARGUMENTS}
    return [n for n in NODES if parse_bool(args.get(n.start_arg, defaults[n.start_arg]))]
