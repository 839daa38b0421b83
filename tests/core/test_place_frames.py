"""Per-place frames (REP-105): stored with each pose, saved, loaded, old maps read in their
map-level frame, odom frames warned about."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from lavpr_ros.core.manifest import sha256_file
from lavpr_ros.core.place_map import MapFormatError, PlaceMap, is_odom_frame

DIM = 8


def _unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pose(i: float) -> list[float]:
    return [i, 2.0 * i, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_places_keep_their_frames_through_save_and_load(tmp_path: Path) -> None:
    x = _unit(5)
    m = PlaceMap(DIM, "m", frame_id="map")
    m.add(x[0], 1.0, _pose(0), frame_id="odom")
    m.add(x[1], 2.0, _pose(1), frame_id="map")
    m.add(x[2], 3.0)  # no pose, no frame given: the map's frame
    m.add_batch(x[3:], [4.0, 5.0], [_pose(3), _pose(4)], frame_ids=["robot1/map", "map"])
    assert m.frame_ids == ["odom", "map", "map", "robot1/map", "map"]
    assert m.get(0).frame_id == "odom" and m.get(3).frame_id == "robot1/map"
    assert m.pose_frames() == ["odom", "map", "robot1/map"]
    m2 = PlaceMap.load(m.save(tmp_path / "map"))
    assert m2.frame_ids == m.frame_ids and m2.frame_id == "map"
    np.testing.assert_allclose(m2.get(3).pose, _pose(3))
    m2.add(x[0], 6.0, _pose(6), frame_id="map")  # a loaded map keeps growing, frames too
    m3 = PlaceMap.load(m2.save(tmp_path / "map"))
    assert m3.frame_ids == [*m.frame_ids, "map"]


def test_bad_frames_are_refused_and_nothing_is_stored() -> None:
    x = _unit(2)
    m = PlaceMap(DIM, "m")
    for bad in ("", "  ", "a b", "x\n", None):
        with pytest.raises(ValueError, match="frame"):
            m.add_batch(x, [1.0, 2.0], [_pose(0), _pose(1)], frame_ids=["map", bad])  # type: ignore[list-item]
        assert len(m) == 0
    with pytest.raises(ValueError, match="2 descriptors but 1 frame"):
        m.add_batch(x, [1.0, 2.0], frame_ids=["map"])
    with pytest.raises(ValueError, match="frame_id"):
        PlaceMap(DIM, "m", frame_id="")


def _as_old_format(map_dir: Path) -> None:
    """Rewrite a saved map as maps were before places had frames: no frame_id column."""
    db = map_dir / "places.sqlite"
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE places DROP COLUMN frame_id")
    con.commit()
    con.close()
    man = map_dir / "manifest.yaml"
    meta = yaml.safe_load(man.read_text())
    meta["sha256"]["places.sqlite"] = sha256_file(db)
    man.write_text(yaml.safe_dump(meta, sort_keys=False))


@pytest.mark.parametrize("frame", ["odom", "map"])
def test_old_maps_load_with_their_map_level_frame(tmp_path: Path, frame: str) -> None:
    x = _unit(3)
    m = PlaceMap(DIM, "m", frame_id=frame)
    for i in range(3):
        m.add(x[i], 1.0 + i, _pose(i), frame_id="something_else")
    out = m.save(tmp_path / "old")
    _as_old_format(out)
    con = sqlite3.connect(out / "places.sqlite")
    cols = [r[1] for r in con.execute("PRAGMA table_info(places)")]
    con.close()
    assert "frame_id" not in cols
    old = PlaceMap.load(out)
    assert old.frame_ids == [frame] * 3 and old.get(1).frame_id == frame
    np.testing.assert_allclose(old.get(2).pose, _pose(2))
    assert (old.odom_warning() is not None) == (frame == "odom")


def test_bad_frame_column_is_a_format_error(tmp_path: Path) -> None:
    m = PlaceMap(DIM, "m")
    m.add(_unit(1)[0], 1.0, _pose(0), frame_id="map")
    out = m.save(tmp_path / "map")
    db = out / "places.sqlite"
    con = sqlite3.connect(db)
    con.execute("UPDATE places SET frame_id = 'bad frame'")
    con.commit()
    con.close()
    man = out / "manifest.yaml"
    meta = yaml.safe_load(man.read_text())
    meta["sha256"]["places.sqlite"] = sha256_file(db)
    man.write_text(yaml.safe_dump(meta, sort_keys=False))
    with pytest.raises(MapFormatError, match="frame_id"):
        PlaceMap.load(out)


def test_odom_warning_names_the_odom_places() -> None:
    x = _unit(4)
    m = PlaceMap(DIM, "m", frame_id="odom")
    m.add(x[0], 1.0)  # no pose: nothing to lose
    assert m.odom_warning() is None
    m.add(x[1], 2.0, _pose(1), frame_id="map")
    assert m.odom_warning() is None
    m.add(x[2], 3.0, _pose(2), frame_id="robot1/odom")
    m.add(x[3], 4.0, _pose(3), frame_id="odom")
    warning = m.odom_warning()
    assert warning is not None and "2 place(s)" in warning
    assert "do not survive a restart" in warning and "robot1/odom" in warning
    assert is_odom_frame("/odom") and not is_odom_frame("odom_combined")
    assert not is_odom_frame("map")


def test_corrected_poses_take_the_corrections_frame() -> None:
    x = _unit(3)
    m = PlaceMap(DIM, "m")
    for i in range(3):
        m.add(x[i], 10.0 + i, _pose(i), frame_id="odom")
    assert m.correct_poses([11.0], [_pose(9)], frame_id="map") == 1
    assert m.frame_ids == ["odom", "map", "odom"]
    assert m.correct_poses([12.0], [_pose(8)]) == 1  # no frame given: kept
    assert m.frame_ids == ["odom", "map", "odom"]
    with pytest.raises(ValueError, match="frame"):
        m.correct_poses([10.0], [_pose(7)], frame_id="")
    np.testing.assert_allclose(m.get(0).pose, _pose(0))  # nothing changed
