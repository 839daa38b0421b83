"""Rewrite the build machine's paths baked into the ROS 2 wheels' CMake exports.

The PyPI ROS wheels were built under /opt/python/cp311-cp311; their exported CMake files name that
interpreter's include directory (and numpy's), so `colcon build` of an interface package fails on a
non-existent include path. This rewrites them to this venv's interpreter. Idempotent.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

BUILD_PREFIX = "/opt/python/cp311-cp311"


def replacements(venv: Path) -> list[tuple[str, str]]:
    import numpy

    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [
        (f"{BUILD_PREFIX}/include/{ver}", sysconfig.get_paths()["include"]),
        (f"{BUILD_PREFIX}/lib/{ver}/site-packages/numpy/_core/include", numpy.get_include()),
        (f"{BUILD_PREFIX}/lib/{ver}/site-packages", sysconfig.get_paths()["purelib"]),
        (BUILD_PREFIX, str(venv)),
    ]


def main() -> int:
    venv = Path(sys.prefix)
    share = venv / "share"
    if not share.is_dir():
        print(f"no {share}: are the ROS wheels installed in this venv?", file=sys.stderr)
        return 1
    pairs = replacements(venv)
    changed = 0
    for path in share.rglob("*"):
        if not path.is_file() or path.suffix not in {".cmake", ""}:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if BUILD_PREFIX not in text:
            continue
        for old, new in pairs:
            text = text.replace(old, new)
        path.write_text(text)
        changed += 1
    print(f"fix_ros_wheel_paths: rewrote {changed} file(s) under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
