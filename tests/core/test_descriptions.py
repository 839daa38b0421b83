"""Description CSVs in the LaVPR layout, and ``lavpr eval-images --mode text`` on Corridor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lavpr_ros.core.descriptions import (
    DescriptionError,
    descriptions_for,
    read_descriptions,
    write_descriptions,
)

REPO = Path(__file__).resolve().parents[2]
DESC = REPO / "evaluation" / "descriptions"


def test_header_layout_keyed_by_file_name(tmp_path) -> None:
    p = tmp_path / "d.csv"
    p.write_text(
        'image_path,description\nref/0001.jpg,"a red door, then stairs"\n'
        "ref/0002.jpg,\n"  # empty: no description
        "C:\\data\\0003.jpg,lockers\n"
    )
    table = read_descriptions(p)
    assert table == {"0001.jpg": "a red door, then stairs", "0003.jpg": "lockers"}
    assert descriptions_for(["x/0001.jpg", Path("y/0002.jpg")], table) == [
        "a red door, then stairs",
        None,
    ]


def test_other_header_names_and_headerless(tmp_path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("caption,image_name\nglass wall,0007.png\n")
    assert read_descriptions(a) == {"0007.png": "glass wall"}
    b = tmp_path / "b.csv"
    b.write_text("q/0009.jpg,long hall, green walls\n")  # unquoted comma in the text
    assert read_descriptions(b) == {"0009.jpg": "long hall, green walls"}


def test_conflicts_and_bad_files(tmp_path) -> None:
    p = tmp_path / "dup.csv"
    p.write_text("image_path,description\na/1.jpg,one\nb/1.jpg,two\n")
    with pytest.raises(DescriptionError, match="line 2"):
        read_descriptions(p)
    q = tmp_path / "hdr.csv"
    q.write_text("image_path,comment\n1.jpg,x\n")
    with pytest.raises(DescriptionError, match="text column"):
        read_descriptions(q)
    with pytest.raises(FileNotFoundError):
        read_descriptions(tmp_path / "missing.csv")


def test_round_trip(tmp_path) -> None:
    rows = [("ref/0000000.jpg", 'a "quoted", comma text'), ("ref/0000001.jpg", "plain")]
    p = write_descriptions(tmp_path / "w.csv", rows)
    assert read_descriptions(p) == {"0000000.jpg": rows[0][1], "0000001.jpg": "plain"}


def test_shipped_corridor_descriptions_cover_every_image(data_root) -> None:
    ref = read_descriptions(DESC / "corridor_ref.csv")
    query = read_descriptions(DESC / "corridor_query.csv")
    for folder, table in (("ref", ref), ("query", query)):
        names = {p.name for p in (data_root / "corridor" / folder).glob("*.jpg")}
        assert set(table) == names
    assert len(set(ref.values())) == len(ref)  # no copy-pasted descriptions


def test_eval_images_text_mode_on_corridor(tmp_path, data_root, text_model) -> None:
    from lavpr_ros.cli.main import main

    out = tmp_path / "text"
    rc = main(
        [
            "eval-images",
            "--dataset",
            "corridor",
            "--mode",
            "text",
            "--quiet",
            "--text-model",
            str(text_model),
            "--descriptions",
            str(DESC / "corridor_ref.csv"),
            "--query-descriptions",
            str(DESC / "corridor_query.csv"),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_queries_evaluated"] == 111 and m["num_refs_described"] == 111
    # Chance is ~5/111; the measured value with minilm-l6-v2 is 0.495.
    assert 0.35 < m["text_recall@1"] <= m["text_recall@5"] <= m["text_recall@10"]
    assert main(["eval-images", "--dataset", "corridor", "--mode", "text", "--quiet"]) == 2
