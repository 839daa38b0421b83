"""`lavpr map annotate` and `lavpr map places` on a saved map (the project's map format) with the
real hand-written Corridor descriptions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lavpr_ros.cli.main import main
from lavpr_ros.core.place_map import PlaceMap

REPO = Path(__file__).resolve().parents[2]
CSV = REPO / "evaluation" / "descriptions" / "corridor_ref.csv"


@pytest.fixture
def saved_map(tmp_path) -> Path:
    """111 places (one per Corridor reference image), stamps 100 + i s, every 2nd with a pose."""
    rng = np.random.default_rng(0)
    m = PlaceMap(dim=8, model_id="m", frame_id="map")
    for i in range(111):
        pose = [float(i), 0.5, 0.0, 0, 0, 0, 1] if i % 2 == 0 else None
        m.add(rng.standard_normal(8), 100.0 + i, pose)
    path = tmp_path / "map"
    m.save(path)
    return path


def test_annotate_by_id_then_list_places(saved_map, capsys) -> None:
    assert main(["map", "annotate", str(saved_map), "--csv", str(CSV)]) == 0
    assert "111 place(s) described" in capsys.readouterr().out
    m = PlaceMap.load(saved_map)
    assert m.get(31).description.startswith("picture on the left wall")
    assert main(["map", "places", str(saved_map), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 111 and rows[2]["pose"][:3] == [2.0, 0.5, 0.0] and rows[1]["pose"] is None
    assert rows[2]["frame_id"] == "map" and rows[2]["stamp"] == pytest.approx(102.0)
    assert rows[17]["description"] == m.get(17).description
    assert main(["map", "places", str(saved_map)]) == 0
    text = capsys.readouterr().out
    assert "x [m]" in text and "111 place(s), 111 described" in text


def test_annotate_by_stamp(saved_map, tmp_path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("image_path,description\nimg/105.000.png,a door\nimg/frame_107.02.png,a box\n")
    assert main(["map", "annotate", str(saved_map), "--csv", str(csv), "--by", "stamp"]) == 0
    m = PlaceMap.load(saved_map)
    assert m.get(5).description == "a door" and m.get(7).description == "a box"


def test_unknown_rows_write_nothing(saved_map, tmp_path, capsys) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("image_path,description\nref/0000003.jpg,a door\nref/0000500.jpg,nowhere\n")
    assert main(["map", "annotate", str(saved_map), "--csv", str(csv)]) == 2
    assert "match no place" in capsys.readouterr().err
    assert PlaceMap.load(saved_map).get(3).description == ""
    args = ["map", "annotate", str(saved_map), "--csv", str(csv), "--skip-unknown"]
    assert main(args) == 0
    assert PlaceMap.load(saved_map).get(3).description == "a door"


def test_places_show_each_places_frame_and_warn_about_odom(tmp_path, capsys) -> None:
    m = PlaceMap(dim=8, model_id="m", frame_id="map")
    rng = np.random.default_rng(1)
    m.add(rng.standard_normal(8), 1.0, [1.0, 0, 0, 0, 0, 0, 1], frame_id="odom")
    m.add(rng.standard_normal(8), 2.0, [2.0, 0, 0, 0, 0, 0, 1], frame_id="robot1/map")
    path = tmp_path / "mixed"
    m.save(path)
    assert main(["map", "places", str(path), "--json"]) == 0
    out = capsys.readouterr()
    assert [r["frame_id"] for r in json.loads(out.out)] == ["odom", "robot1/map"]
    assert "1 place(s) have poses in odom" in out.err and "do not survive a restart" in out.err
    assert main(["map", "places", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[2] == "odom" and lines[2].split()[2] == "robot1/map"
    assert main(["map", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pose_frames"] == ["odom", "robot1/map"] and "odom" in info["warning"]


def test_map_frame_places_give_no_warning(saved_map, capsys) -> None:
    assert main(["map", "info", str(saved_map)]) == 0
    out = capsys.readouterr()
    assert "pose_frames        map" in out.out and out.err == ""


def test_reindex_refits_a_pca_pq_projection_on_all_places(tmp_path, capsys) -> None:
    """A PCA-PQ index trained on one area knows only its directions; places of a second area
    added later rank poorly until `lavpr map reindex` refits the projection on all places."""
    rng = np.random.default_rng(0)
    dim, n = 64, 1000

    def area(basis: np.ndarray) -> np.ndarray:
        x = rng.standard_normal((n, len(basis))) @ basis + 0.01 * rng.standard_normal((n, dim))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    basis = np.linalg.qr(rng.standard_normal((dim, 24)))[0].T  # orthogonal 16-d and 8-d areas
    a, b = area(basis[:16]), area(basis[16:])
    m = PlaceMap(dim, "m", "pcapq", pca_dim=16)
    m.add_batch(a, np.arange(n, dtype=float))  # trained here, on area a only
    m.add_batch(b, np.arange(n, 2 * n, dtype=float))
    queries = b[:100] + 0.02 * rng.standard_normal((100, dim)).astype(np.float32)

    def recall(pm: PlaceMap) -> float:
        return float(np.mean([pm.search(q, 1)[0][0] == n + i for i, q in enumerate(queries)]))

    before = recall(m)
    m.save(tmp_path / "map")
    assert main(["map", "reindex", str(tmp_path / "map")]) == 0
    assert "index pcapq -> pcapq" in capsys.readouterr().out
    after = PlaceMap.load(tmp_path / "map")
    assert after.index_type == "pcapq" and after.pca_dim == 16 and after.index.ntotal == 2 * n
    assert recall(after) >= 0.9 > 0.5 > before
