"""Dataset loading: JSON ground truth, ±tolerance ground truth, subsets and the real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lavpr_ros.core.data_location import DataNotFoundError
from lavpr_ros.core.datasets import corridor, list_images, load_image_pair_dataset, nordland


def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for n in names:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / n)


def test_tolerance_ground_truth_and_sorting(tmp_path: Path) -> None:
    _write_images(tmp_path / "ref", ["b.png", "a.jpg", "c.png"])
    _write_images(tmp_path / "q", ["2.png", "1.png"])
    (tmp_path / "ref" / "notes.txt").write_text("not an image")
    ds = load_image_pair_dataset(tmp_path / "ref", tmp_path / "q", tolerance=1)
    assert [p.name for p in ds.ref_paths] == ["a.jpg", "b.png", "c.png"]
    assert [p.name for p in ds.query_paths] == ["1.png", "2.png"]
    assert ds.positives == [{0, 1}, {0, 1, 2}]
    assert load_image_pair_dataset(tmp_path / "ref", tmp_path / "q", tolerance=0).positives == [
        {0},
        {1},
    ]


def test_json_ground_truth(tmp_path: Path) -> None:
    _write_images(tmp_path / "ref", [f"{i}.png" for i in range(3)])
    _write_images(tmp_path / "q", [f"{i}.png" for i in range(2)])
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps([{"query": 1, "positives": [2, 0]}]))
    ds = load_image_pair_dataset(tmp_path / "ref", tmp_path / "q", gt)
    assert ds.positives == [set(), {0, 2}]
    gt.write_text(json.dumps([{"query": 1, "positives": [7]}]))
    with pytest.raises(ValueError, match="outside"):
        load_image_pair_dataset(tmp_path / "ref", tmp_path / "q", gt)
    gt.write_text("{not json")
    with pytest.raises(ValueError):
        load_image_pair_dataset(tmp_path / "ref", tmp_path / "q", gt)


def test_subset_rebases_positives(tmp_path: Path) -> None:
    _write_images(tmp_path / "ref", [f"{i}.png" for i in range(10)])
    _write_images(tmp_path / "q", [f"{i}.png" for i in range(10)])
    ds = load_image_pair_dataset(tmp_path / "ref", tmp_path / "q", tolerance=1).subset(4, 3)
    assert [p.name for p in ds.query_paths] == ["4.png", "5.png", "6.png"]
    assert ds.positives == [{0, 1}, {0, 1, 2}, {1, 2}]


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "empty")


def test_real_datasets() -> None:
    try:
        c = corridor()
        n = nordland()
    except DataNotFoundError as exc:
        pytest.skip(f"real data not available: {exc}")
    assert len(c.ref_paths) == len(c.query_paths) == 111
    assert {0, 1, 2} <= c.positives[0]
    assert len(n.ref_paths) == len(n.query_paths) == 3576
    assert n.ref_paths[5].name == n.query_paths[5].name
    assert n.positives[5] == {4, 5, 6}
