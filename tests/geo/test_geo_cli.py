"""``lavpr map tag/info/list`` on saved maps and ``lavpr geo eval`` on real images + fake server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fake_globe import FakeGlobeServer, Reply

from lavpr_ros.cli.main import main
from lavpr_ros.core.place_map import PlaceMap


def _map(path: Path, n: int) -> Path:
    m = PlaceMap(dim=8, model_id="m1")
    m.add_batch(np.random.default_rng(n).normal(size=(n, 8)), np.arange(n, dtype=float))
    m.set_description(0, "door")
    return m.save(path)


def test_map_tag_info_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _map(tmp_path / "bodo", 3)
    _map(tmp_path / "oslo", 6)
    assert main(["map", "tag", str(tmp_path / "bodo"), "country=Norway", "city=Bodø"]) == 0
    assert main(["map", "tag", str(tmp_path / "oslo"), "country=Norway", "city=Oslo", "x=1"]) == 0
    assert main(["map", "tag", str(tmp_path / "oslo"), "x="]) == 0  # removes x
    loaded = PlaceMap.load(tmp_path / "bodo")  # still a valid map (checksums), places kept
    assert loaded.tags == {"country": "Norway", "city": "Bodø"} and len(loaded) == 3
    assert loaded.get(0).description == "door"
    capsys.readouterr()
    assert main(["map", "info", str(tmp_path / "oslo"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["places"] == 6 and info["tags"] == {"country": "Norway", "city": "Oslo"}
    assert info["described_places"] == 1 and info["model_id"] == "m1"
    assert main(["map", "list", str(tmp_path), "--country", "norway", "--city", "BODO"]) == 0
    out = capsys.readouterr().out
    assert "* bodo" in out and "matched on city" in out
    assert main(["map", "list", str(tmp_path), "--country", "Sweden"]) == 1
    assert main(["map", "tag", str(tmp_path / "bodo"), "Norway"]) == 2  # not key=value
    assert main(["map", "info", str(tmp_path / "nothing")]) == 2


def test_geo_eval_on_real_images(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        shutil.copy(data_root / "corridor" / "ref" / f"{i:07d}.jpg", images / f"{i:07d}.jpg")
    # MP16-Reason-style CSV: image path, country, city, coordinates.
    csv = tmp_path / "gt.csv"
    csv.write_text(
        "IMG_ID,country,city,LAT,LON\n"
        "0000000.jpg,Norway,Bodø,67.2804,14.4049\n"
        "0000001,Norway,Oslo,59.9139,10.7522\n"
        "0000002.jpg,France,Paris,48.8566,2.3522\n"
        "0000003.jpg,Australia,Brisbane,-27.4698,153.0251\n"
    )
    replies = [
        Reply("<answer>Country: Norway; City: Bodo; Coordinates: 67.28, 14.40</answer>"),
        Reply("<answer>Country: norway; City: Bergen; Coordinates: 60.39, 5.32</answer>"),
        Reply("error", status=500),  # retried once, then the answer below
        Reply("<think>Paris.</think><answer>country: France\ncity: Paris</answer>"),
        Reply("total garbage"),  # unusable: counts as wrong
    ]
    out = tmp_path / "report.json"
    with FakeGlobeServer(replies, max_requests=20) as server:
        code = main(
            ["geo", "eval", "--images", str(images), "--csv", str(csv), "--out", str(out),
             "--base-url", server.base_url, "--model", "globe", "--backoff", "0.01",
             "--max-image-side", "64", "--no-progress"]
        )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    m = report["metrics"]
    assert m["images"] == 4 and m["failed"] == 1
    assert m["country_accuracy"] == pytest.approx(3 / 4)
    assert m["city_accuracy"] == pytest.approx(2 / 4)
    assert m["coordinate_rows"] == 4 and m["with_predicted_coordinates"] == 2
    assert m["acc@1km"] == pytest.approx(1 / 4)  # Bodø within ~0.5 km
    assert m["acc@25km"] == pytest.approx(1 / 4)
    assert m["acc@750km"] == pytest.approx(2 / 4)  # Bergen ~305 km from Oslo
    preds = report["predictions"]
    assert preds[1]["pred_city"] == "Bergen" and "error" in preds[3]
    # Every image really went to the server, downscaled JPEG.
    assert len(server.chat_requests) == 5
    assert "acc@2500km" in capsys.readouterr().out


def test_geo_eval_im2gps_layout_without_names(tmp_path: Path, data_root: Path) -> None:
    images = tmp_path / "im2gps3ktest"
    images.mkdir()
    shutil.copy(data_root / "corridor" / "query" / "0000005.jpg", images / "5.jpg")
    csv = tmp_path / "im2gps3k_places365.csv"
    csv.write_text("IMG_ID,LAT,LON,S3_Label,Prob_indoor\n5.jpg,-27.47,153.02,0,0.9\n")
    out = tmp_path / "r.json"
    reply = Reply("<answer>Country: Australia; City: Brisbane; Coordinates: -27.5, 153.0</answer>")
    with FakeGlobeServer([reply], max_requests=5) as server:
        assert main(["geo", "eval", "--images", str(images), "--csv", str(csv), "--out",
                     str(out), "--base-url", server.base_url, "--no-progress"]) == 0  # fmt: skip
    m = json.loads(out.read_text())["metrics"]
    assert m["country_accuracy"] is None and m["city_accuracy"] is None  # no names in the CSV
    assert m["acc@25km"] == 1.0 and m["acc@1km"] == 0.0
    assert m["model"] == "GLOBE-Qwen2.5VL-7B"  # asked from GET /v1/models
