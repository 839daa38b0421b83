"""Make the fake GLOBE server of this folder and tests/ros's rosclient importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "ros"))
