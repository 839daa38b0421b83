"""Environment for ROS processes: isolated domain, localhost discovery, big-image transport."""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
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


_HELD: list[int] = []  # lock file descriptors kept open for this process's lifetime


def reserve_domain_id() -> int:
    """A ROS_DOMAIN_ID no other lavpr run on this machine holds (a flock per id, released when
    this process exits). 1..101: valid for Fast DDS with Linux's default ephemeral ports."""
    ids = list(range(1, 102))
    random.Random(os.getpid() ^ int.from_bytes(os.urandom(2))).shuffle(ids)
    lock_dir = Path(tempfile.gettempdir()) / "lavpr-ros-domains"
    lock_dir.mkdir(exist_ok=True)
    for domain_id in ids:
        fd = os.open(lock_dir / f"{domain_id}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _HELD.append(fd)
        return domain_id
    raise RuntimeError("all ROS domain ids 1..101 are held by other lavpr runs on this machine")


def isolated_ros_env(
    domain_id: int | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """A copy of the environment with a private ROS_DOMAIN_ID and localhost-only discovery.

    Test runs and demos use it so that they neither hear nor disturb other ROS graphs.
    """
    env = dict(os.environ if base is None else base)
    if domain_id is None:
        domain_id = reserve_domain_id()  # not 0 (everyone's default), not another run's
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    profile = fastdds_profile()
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env["PYTHONUNBUFFERED"] = "1"
    return env
