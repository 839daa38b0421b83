"""ament_python build of lavpr_ros; launch/, config/ and rviz/ live at the repository root."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "lavpr_ros"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # repository root (src/lavpr_ros -> .)


def _rel(pattern: str) -> list[str]:
    """Files under the repository root, relative to this setup.py (as setuptools wants)."""
    import os

    return sorted(os.path.relpath(p, HERE) for p in glob(str(ROOT / pattern)))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _rel("launch/*.py")),
        (f"share/{PACKAGE}/config", _rel("config/*.yaml") + _rel("config/*.xml")),
        (f"share/{PACKAGE}/rviz", _rel("rviz/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="lavpr_ros maintainers",
    maintainer_email="maintainers@lavpr.invalid",
    description="Online visual and language place recognition for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "lavpr = lavpr_ros.cli.main:main",
            "vpr_encoder = lavpr_ros.nodes.vpr_encoder:main",
            "place_map = lavpr_ros.nodes.place_map:main",
            "text_nav = lavpr_ros.nodes.text_nav:main",
            "geo_localizer = lavpr_ros.nodes.geo_localizer:main",
            "pose_graph = lavpr_ros.nodes.pose_graph:main",
        ],
    },
)
