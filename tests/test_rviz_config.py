"""The shipped RViz config shows the graph's topics and is installed to share/lavpr_ros/rviz."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RVIZ = REPO / "rviz" / "lavpr.rviz"


def _displays() -> dict[str, dict]:
    cfg = yaml.safe_load(RVIZ.read_text())
    return {d["Class"]: d for d in cfg["Visualization Manager"]["Displays"]}


def test_rviz_shows_camera_markers_path_and_goals() -> None:
    d = _displays()
    assert d["rviz_default_plugins/Image"]["Topic"]["Value"] == "/camera/image_raw"
    assert d["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/vpr/markers"
    path = d["rviz_default_plugins/Path"]["Topic"]
    assert path["Value"] == "/vpr/keyframe_path"
    assert path["Durability Policy"] == "Transient Local"  # place_map latches the path
    assert d["rviz_default_plugins/Pose"]["Topic"]["Value"] == "/goal_pose"


def test_rviz_config_is_installed() -> None:
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("lavpr_ros"))
    except Exception as exc:  # no install space sourced (scripts/env.sh after make setup)
        pytest.skip(f"lavpr_ros is not installed: {exc}")
    assert (share / "rviz" / "lavpr.rviz").read_text() == RVIZ.read_text()
