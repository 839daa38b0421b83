"""Import the runtime package (``src/lavpr_ros/lavpr_ros``) from the training venv.

Pose features, patch-normalised descriptors and the training-free sequence matcher must be the
*same code* at training and run time, so the trainers import them from the runtime core (plain
numpy, no rclpy) instead of keeping copies that could drift apart.
"""

from __future__ import annotations

import sys

from .paths import repo_root


def ensure_runtime_on_path() -> None:
    try:
        import lavpr_ros  # noqa: F401
    except ImportError:
        src = repo_root() / "src" / "lavpr_ros"
        if str(src) not in sys.path:
            sys.path.insert(0, str(src))
