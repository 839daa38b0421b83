"""core/geo.py: GLOBE reply parsing, name matching, the map catalog, ground truth and scoring."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lavpr_ros.core.geo import (
    GLOBE_PROMPT,
    GeoAnswer,
    GeoParseError,
    GroundTruth,
    haversine_km,
    loose_match,
    names_match,
    normalise_name,
    parse_answer,
    parse_tags,
    read_ground_truth,
    scan_maps,
    score_geo,
    select_map,
)
from lavpr_ros.core.place_map import PlaceMap

NAN = math.nan

# (reply, country, city, lat, lon, confidence)
VARIANTS = [
    (
        "<think>Norwegian signs.</think><answer>Country: Norway; City: Bodø; "
        "Coordinates: 67.28, 14.40</answer>",
        "Norway", "Bodø", 67.28, 14.40, NAN,
    ),
    (
        "<think>x</think><answer>country: France\ncity: Paris</answer>",
        "France", "Paris", NAN, NAN, NAN,
    ),
    ("French signs. <ANSWER>COUNTRY: France; CITY: Paris", "France", "Paris", NAN, NAN, NAN),
    (
        "Maybe country: Germany?\nFinal answer: Country: France, City: Lyon",
        "France", "Lyon", NAN, NAN, NAN,
    ),
    (
        '<answer>{"country": "Japan", "city": "Tokyo", "coordinates": [35.68, 139.69]}</answer>',
        "Japan", "Tokyo", 35.68, 139.69, NAN,
    ),
    (
        'Here: ```json\n{"Country": "Japan", "City": "Osaka", "lat": 34.69, "lon": 135.5}\n```',
        "Japan", "Osaka", 34.69, 135.5, NAN,
    ),
    (
        '<answer>{"location": {"lat": -33.87, "lon": 151.21}, "country": "Australia", '
        '"city": "Sydney", "confidence": 0.8}</answer>',
        "Australia", "Sydney", -33.87, 151.21, 0.8,
    ),
    (
        "<answer>1. Country: France; City: Paris (confidence 0.3)\n"
        "2. Country: Belgium; City: Brussels (confidence 0.6)</answer>",
        "Belgium", "Brussels", NAN, NAN, 0.6,
    ),
    (
        "<answer>1. Country: France; City: Paris (30%)\n2. Country: Belgium; City: Brussels (60%)"
        "</answer>",
        "Belgium", "Brussels", NAN, NAN, 0.6,
    ),
    (
        "<answer>1. Country: France; City: Paris\n2. Country: Belgium; City: Brussels</answer>",
        "France", "Paris", NAN, NAN, NAN,
    ),
    (
        '[{"country": "Spain", "city": "Madrid", "confidence": 0.2}, '
        '{"country": "Portugal", "city": "Lisbon", "confidence": 0.7}]',
        "Portugal", "Lisbon", NAN, NAN, 0.7,
    ),
    ("<answer>Country: unknown; City: unknown</answer>", "", "", NAN, NAN, NAN),
    ("<answer>Unknown.</answer>", "", "", NAN, NAN, NAN),
    ("<answer>Country: N/A\nCity: [city name]</answer>", "", "", NAN, NAN, NAN),
    (
        "<answer>Country: Brazil; City: Unknown; Coordinates: 22.9° S, 43.2° W</answer>",
        "Brazil", "", -22.9, -43.2, NAN,
    ),
    (
        "<answer>**Country:** Norway\n**City:** Oslo\n**Confidence:** 80%</answer>",
        "Norway", "Oslo", NAN, NAN, 0.8,
    ),
    ("<answer>- Country: Norway\n- City: Tromsø</answer>", "Norway", "Tromsø", NAN, NAN, NAN),
    ("<answer>City: Paris, France</answer>", "France", "Paris", NAN, NAN, NAN),
    (
        "<answer>Country: United States; City: New York City; Coordinates: 40.7128, -74.0060; "
        "Confidence: 0.9</answer>",
        "United States", "New York City", 40.7128, -74.006, 0.9,
    ),
    (
        "<answer>Country: Chile; City: Santiago; Latitude: 33.45 S; Longitude: 70.67 W</answer>",
        "Chile", "Santiago", -33.45, -70.67, NAN,
    ),
    (  # out-of-range coordinates are dropped, names kept
        "<answer>Country: Peru; City: Lima; Coordinates: 412.0, 77.0</answer>",
        "Peru", "Lima", NAN, NAN, NAN,
    ),
    ("<answer>Country: 'Italy'.\nCity: \"Rome\".</answer>", "Italy", "Rome", NAN, NAN, NAN),
]  # fmt: skip


def _eq(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-6)


@pytest.mark.parametrize(("reply", "country", "city", "lat", "lon", "conf"), VARIANTS)
def test_parse_answer_variants(reply, country, city, lat, lon, conf) -> None:
    a = parse_answer(reply)
    assert (a.country, a.city) == (country, city)
    assert _eq(a.latitude, lat) and _eq(a.longitude, lon)
    assert a.has_coordinates == (not math.isnan(lat))
    assert _eq(a.confidence, conf)


def test_reasoning_is_the_text_before_the_answer() -> None:
    a = parse_answer("<think>Signs are in Norwegian.</think>\n<answer>Country: Norway</answer>")
    assert a.reasoning == "Signs are in Norwegian."
    assert a.notes == []
    b = parse_answer("It looks Dutch.\nCountry: Netherlands\nCity: Utrecht")
    assert b.reasoning == "It looks Dutch." and "no <answer> block" in b.notes
    c = parse_answer("<answer>Country: France; City: Nice")
    assert "no closing </answer> tag" in c.notes


def test_unknown_answer_is_not_an_error() -> None:
    a = parse_answer("<answer>Country: unknown; City: unknown</answer>")
    assert a.unknown and not a.has_coordinates


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty reply"),
        ("   \n ", "empty reply"),
        ("I cannot help with that.", "no <answer> block"),
        ("<answer>somewhere nice</answer>", "holds no Country/City"),
        ("\x00\xff garbage {{{ ]]", "no <answer> block"),
    ],
)
def test_garbage_raises_with_a_reason(reply: str, why: str) -> None:
    with pytest.raises(GeoParseError, match=why):
        parse_answer(reply)


def test_prompt_asks_for_the_parsed_format() -> None:
    for clue in ("signs", "language", "vegetation", "architecture", "road markings", "drives"):
        assert clue in GLOBE_PROMPT
    assert "<answer>Country:" in GLOBE_PROMPT and "Coordinates:" in GLOBE_PROMPT
    # The example line of the prompt itself parses.
    a = parse_answer("<answer>Country: Norway; City: Bodø; Coordinates: 67.28, 14.4</answer>")
    assert a.label() == "Norway / Bodø (67.2800, 14.4000)"


def test_names_are_case_and_diacritics_insensitive() -> None:
    assert normalise_name("  BODØ ") == "bodo" == normalise_name("Bodo")
    assert normalise_name("São Paulo") == "sao paulo"
    assert normalise_name("Zürich") == normalise_name("zurich")
    assert names_match("Kraków", "krakow") and not names_match("", "")
    assert names_match("USA", "United States of America", country=True)
    assert names_match("The Netherlands", "Holland", country=True)
    assert not names_match("Austria", "Australia", country=True)
    assert loose_match("Washington DC", "washington") and not loose_match("York", "New York")


def _save_map(path: Path, n: int, tags: dict[str, str], model: str = "m1") -> Path:
    m = PlaceMap(dim=8, model_id=model)
    rng = np.random.default_rng(n)
    m.add_batch(rng.normal(size=(n, 8)), np.arange(n, dtype=float))
    m.tags.update(tags)
    return m.save(path)


def test_catalog_selection(tmp_path: Path) -> None:
    _save_map(tmp_path / "bodo_harbour", 3, {"country": "Norway", "city": "Bodø"})
    _save_map(tmp_path / "oslo", 9, {"country": "Norway", "city": "Oslo"})
    _save_map(tmp_path / "oslo_small", 4, {"country": "norway", "city": "OSLO"})
    _save_map(tmp_path / "paris", 5, {"country": "France", "city": "Paris"})
    _save_map(tmp_path / "paris_tx", 50, {"country": "United States", "city": "Paris"})
    _save_map(tmp_path / "untagged", 99, {})
    _save_map(tmp_path / "other_model", 500, {"country": "Norway", "city": "Bodø"}, model="m2")
    (tmp_path / "not_a_map").mkdir()
    entries = scan_maps(tmp_path)
    assert len(entries) == 7
    assert {e.path.name: e.places for e in entries}["oslo"] == 9

    def pick(country: str, city: str, model: str | None = "m1") -> tuple[str, str] | None:
        c = select_map(entries, country, city, model_id=model)
        return None if c is None else (c.entry.path.name, c.level)

    assert pick("NORWAY", "bodo") == ("bodo_harbour", "city")  # city beats a bigger country map
    assert pick("Norway", "Bodø", model=None) == ("other_model", "city")  # most places
    assert pick("Norway", "Trondheim") == ("oslo", "country")  # tie on country -> most places
    assert pick("", "Oslo") == ("oslo", "city")  # tie on city -> most places
    assert pick("France", "Paris") == ("paris", "city")  # Paris, Texas has the wrong country
    assert pick("USA", "Paris") == ("paris_tx", "city")  # alias
    assert pick("Sweden", "Malmö") is None
    assert pick("", "") is None


def test_parse_tags() -> None:
    assert parse_tags(["country=Norway", "city= Bodø ", "site="]) == {
        "country": "Norway",
        "city": "Bodø",
        "site": "",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_tags(["Norway"])


def test_haversine_known_distances() -> None:
    assert haversine_km(0, 0, 0, 0) == 0
    # Paris - London ~ 344 km; antipodes ~ half the circumference.
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * 6371.0, rel=1e-9)


def test_ground_truth_layouts(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    for name in ("a.jpg", "b.jpg", "sub_c.png"):
        (tmp_path / "img" / name).write_bytes(b"x")
    im2gps = tmp_path / "im2gps3k_places365.csv"
    im2gps.write_text("IMG_ID,LAT,LON,S3_Label\na.jpg,48.85,2.35,1\nb,51.5,-0.12,0\n")
    rows = read_ground_truth(im2gps, tmp_path / "img")
    assert [r.image.name for r in rows] == ["a.jpg", "b.jpg"]  # .jpg added like GLOBE's eval
    assert rows[0].has_coordinates and rows[0].country == ""
    mp16 = tmp_path / "mp16-reason-test.csv"
    mp16.write_text(
        "image_path,country,city,latitude,longitude\nsub_c.png,France,Paris,,\n"
        "a.jpg,United Kingdom,London,51.5,-0.12\n"
    )
    rows = read_ground_truth(mp16, tmp_path / "img")
    assert (rows[0].country, rows[0].city, rows[0].has_coordinates) == ("France", "Paris", False)
    assert rows[1].has_coordinates
    bad = tmp_path / "bad.csv"
    bad.write_text("IMG_ID,LAT,LON\nmissing.jpg,1,2\n")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_ground_truth(bad, tmp_path / "img")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="no image column"):
        read_ground_truth(nocol, tmp_path / "img")


def test_score_geo() -> None:
    truths = [
        GroundTruth(Path("a"), "France", "Paris", 48.8566, 2.3522),
        GroundTruth(Path("b"), "United Kingdom", "London", 51.5074, -0.1278),
        GroundTruth(Path("c"), "Norway", "Bodø"),
        GroundTruth(Path("d"), "", "", 35.68, 139.69),
    ]
    answers = [
        GeoAnswer("france", "Paris", 48.86, 2.35),  # ~1 km
        GeoAnswer("UK", "Manchester", 53.48, -2.24),  # ~262 km
        GeoAnswer("Norway", "Bodo"),
        None,  # failed request
    ]
    s = score_geo(truths, answers)
    assert s["images"] == 4 and s["failed"] == 1 and s["answered"] == 3
    assert s["country_accuracy"] == 1.0 and s["country_rows"] == 3
    assert s["city_accuracy"] == pytest.approx(2 / 3)
    assert s["coordinate_rows"] == 3 and s["with_predicted_coordinates"] == 2
    assert s["acc@1km"] == pytest.approx(1 / 3)
    assert s["acc@25km"] == pytest.approx(1 / 3)
    assert s["acc@200km"] == pytest.approx(1 / 3)
    assert s["acc@750km"] == pytest.approx(2 / 3)
    assert s["acc@2500km"] == pytest.approx(2 / 3)
