"""Environment for ROS processes: isolated domain, localhost discovery, big-image transport."""

from __future__ import annotations

import os
import random
from pathlib import Path

PROFILE_NAME = "fastdds_shm.xml"


def fastdds_profile() -> Path | None:
    """The Fast DDS profile with a 32 MB shared-memory segment (installed share dir or checkout)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("lavpr_ros")) / "config" / PROFILE_NAME
        if installed.is_file():
            return installed
    except Exception:
        pass
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "config" / PROFILE_NAME
        if candidate.is_file():
            return candidate
    return None


def isolated_ros_env(
    domain_id: int | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """A copy of the environment with a private ROS_DOMAIN_ID and localhost-only discovery.

    Test runs and demos use it so that they neither hear nor disturb other ROS graphs.
    """
    env = dict(os.environ if base is None else base)
    if domain_id is None:
        # 0..101 are valid for Fast DDS on Linux with default ports; avoid 0 (everyone's default).
        domain_id = random.Random(os.getpid() ^ int.from_bytes(os.urandom(2))).randint(1, 101)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    profile = fastdds_profile()
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env["PYTHONUNBUFFERED"] = "1"
    return env
