"""Image sequences from the datasets, with the simulated odometry that goes with them.

Nordland and Corridor carry no poses, only frame alignment (frame i of one traverse is the same
place as frame i of the other). To drive the pose-aware pipeline, each frame index gets a position
on a fixed planar route (straight legs joined by 90 degree turns, ``spacing_m`` apart), so two
traverses of the same dataset revisit the same positions. Pose ground truth and frame ground truth
then agree by construction; nothing else is invented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavpr_ros.core.data_location import dataset_dir

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class Frame:
    path: Path
    place_index: int  # index along the route: same index = same place
    traverse: str


def route_pose(index: int, spacing_m: float = 2.0, leg: int = 50) -> np.ndarray:
    """(x, y, z, qx, qy, qz, qw) of place ``index`` on a square-wave route."""
    legs, along = divmod(index, leg)
    # East legs alternate with north and south legs: a square wave that never crosses itself.
    x = y = 0.0
    for k in range(legs):
        dx, dy = _leg_direction(k)
        x += dx * leg * spacing_m
        y += dy * leg * spacing_m
    dx, dy = _leg_direction(legs)
    x += dx * along * spacing_m
    y += dy * along * spacing_m
    heading = math.atan2(dy, dx)
    return np.array([x, y, 0.0, 0.0, 0.0, math.sin(heading / 2), math.cos(heading / 2)])


def _leg_direction(k: int) -> tuple[float, float]:
    return [(1.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, -1.0)][k % 4]


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images (png/jpg) in {folder}")
    return files


def dataset_frames(
    name: str, traverses: list[str], start: int = 0, count: int | None = None
) -> list[Frame]:
    """Frames of ``traverses`` (e.g. ["summer", "winter"]) one after the other, same segment."""
    root = dataset_dir(name)
    out: list[Frame] = []
    for trav in traverses:
        files = list_images(root / trav)
        end = len(files) if count is None else min(len(files), start + count)
        out.extend(Frame(files[i], i, trav) for i in range(start, end))
    return out


DATASET_TRAVERSES = {"nordland": ["summer", "winter"], "corridor": ["ref", "query"]}
