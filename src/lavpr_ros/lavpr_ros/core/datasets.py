"""Reference/query image datasets with ground truth, for offline evaluation.

Two ground-truth styles cover the data we use: an explicit Corridor-style JSON list of positives
per query, or frame-aligned traverses (Nordland) where query i matches reference i ± tolerance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .data_location import dataset_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class ImagePairDataset:
    """A reference (map) traverse, a query traverse and the positive map indices of each query."""

    name: str
    ref_paths: list[Path]
    query_paths: list[Path]
    positives: list[set[int]]

    def __post_init__(self) -> None:
        if len(self.positives) != len(self.query_paths):
            raise ValueError(
                f"{len(self.positives)} positive sets for {len(self.query_paths)} queries"
            )

    def subset(self, start: int = 0, count: int | None = None) -> ImagePairDataset:
        """Frames ``start .. start+count`` of BOTH traverses (frame-aligned data, e.g. a Nordland
        segment), positives re-based to the sliced map and those outside it dropped."""
        if start < 0 or (count is not None and count <= 0):
            raise ValueError(f"bad subset start={start} count={count}")
        stop_q = (
            len(self.query_paths) if count is None else min(start + count, len(self.query_paths))
        )
        stop_r = len(self.ref_paths) if count is None else min(start + count, len(self.ref_paths))
        if start >= stop_q or start >= stop_r:
            raise ValueError(f"subset start {start} is beyond the dataset")
        positives = [
            {j - start for j in pos if start <= j < stop_r} for pos in self.positives[start:stop_q]
        ]
        suffix = f"[{start}:{stop_q}]"
        return ImagePairDataset(
            self.name + suffix,
            self.ref_paths[start:stop_r],
            self.query_paths[start:stop_q],
            positives,
        )


def list_images(folder: str | Path) -> list[Path]:
    """JPEG/PNG files directly in ``folder``, sorted by name (frame order for our datasets)."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"image folder not found: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no .jpg/.png images in {d}")
    return files


def _read_ground_truth(path: Path, num_query: int, num_ref: int) -> list[set[int]]:
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read ground truth {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of {{'query': i, 'positives': [...]}}")
    positives: list[set[int]] = [set() for _ in range(num_query)]
    for e in entries:
        try:
            q = int(e["query"])
            pos = {int(j) for j in e["positives"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: bad entry {e!r}") from exc
        if not 0 <= q < num_query:
            raise ValueError(f"{path}: query {q} out of range 0..{num_query - 1}")
        if any(not 0 <= j < num_ref for j in pos):
            raise ValueError(f"{path}: query {q} has positives outside 0..{num_ref - 1}")
        positives[q] |= pos
    return positives


def load_image_pair_dataset(
    ref_dir: str | Path,
    query_dir: str | Path,
    ground_truth: str | Path | None = None,
    tolerance: int = 1,
    name: str | None = None,
) -> ImagePairDataset:
    """Sorted images of both folders; positives from ``ground_truth`` JSON if given, else query i
    matches reference i ± ``tolerance`` (frame-aligned traverses)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    refs, queries = list_images(ref_dir), list_images(query_dir)
    if ground_truth is not None:
        positives = _read_ground_truth(Path(ground_truth), len(queries), len(refs))
    else:
        positives = [
            set(range(max(0, i - tolerance), min(len(refs), i + tolerance + 1)))
            for i in range(len(queries))
        ]
    label = name or f"{Path(ref_dir).name}-vs-{Path(query_dir).name}"
    return ImagePairDataset(label, refs, queries, positives)


def corridor() -> ImagePairDataset:
    """Corridor (111 + 111 indoor images, positives within ±2 frames from its JSON)."""
    root = dataset_dir("corridor")
    return load_image_pair_dataset(
        root / "ref", root / "query", root / "ground_truth.json", name="corridor"
    )


def nordland(map: str = "summer", query: str = "winter", tolerance: int = 1) -> ImagePairDataset:
    """Nordland: two frame-aligned seasons (3576 frames each); same index = same place."""
    root = dataset_dir("nordland")
    return load_image_pair_dataset(
        root / map, root / query, None, tolerance=tolerance, name=f"nordland-{map}-{query}"
    )
