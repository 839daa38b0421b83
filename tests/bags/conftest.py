"""Fixtures of the bag tests; helpers live in bagtools.py (imported by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

NORDLAND_START = 1000


@pytest.fixture(scope="module")
def nordland_frames(data_root: Path):
    """Nordland frames 1000..1059 of summer then winter, posed like the sequence_player."""
    from lavpr_ros.bags.writer import dataset_bag_frames

    return dataset_bag_frames("nordland", None, NORDLAND_START, 60)
