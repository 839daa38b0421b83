"""Coarse geo-localization (GLOBE-style LVLM reasoning): the prompt, answer parsing, map catalog.

GLOBE (Li et al., "Recognition through Reasoning: Reinforcing Image Geo-localization with Large
Vision-Language Models", NeurIPS 2025) fine-tunes a vision-language model to reason over visual
clues and name the country and city of an image; it is served by vLLM behind an OpenAI-compatible
API. This module holds everything about it that decides anything and needs no network or ROS:

- :data:`GLOBE_PROMPT`, the one prompt sent with every image;
- :func:`parse_answer`, a forgiving parser of the model's reply (``<answer>`` block or not, JSON,
  several candidates, "unknown", coordinates in several notations);
- name normalisation and matching (case, diacritics, a few country aliases);
- the map catalog: saved place maps tagged with ``country``/``city`` and :func:`select_map`;
- ground-truth CSV reading (Im2GPS3k and MP16-Reason layouts) and accuracy scoring for
  ``lavpr geo eval``.

Pure Python (no rclpy, no torch, no HTTP): the HTTP client is ``lavpr_ros.geo_client``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The one prompt sent (as the user text, after the image) to the vision-language server. It follows
# GLOBE's reasoning prompt: look for visual clues first, reason step by step, then commit to one
# answer inside <answer> tags. The answer line format is what parse_answer() reads best, but the
# parser also accepts GLOBE's own "country: X\ncity: Y" lines, JSON and free text.
GLOBE_PROMPT = """You are a geolocation expert taking part in a geolocation challenge. \
From the provided image alone:
1. Look carefully for clues about where it was taken: text on signs and its language or script, \
shop names, license plates, road markings and signs, which side of the road traffic drives on, \
architecture and building materials, vegetation and climate, terrain, poles and street furniture.
2. Reason step by step about which country, and then which city, these clues point to, and why.
3. Commit to one most likely answer, even when unsure.

Write your reasoning inside <think> </think> tags, then give the final answer inside \
<answer> </answer> tags exactly in this form:
<answer>Country: [country name]; City: [city name]; Coordinates: [latitude], [longitude]</answer>
Use decimal degrees (north and east positive). If a field cannot be determined, write unknown."""

UNKNOWN_WORDS = frozenset(
    {"", "unknown", "unk", "n/a", "na", "none", "null", "nil", "-", "--", "?", "unsure",
     "unclear", "not sure", "not known", "cannot determine", "cannot be determined",
     "undetermined", "indeterminate", "not determinable", "[country name]", "[city name]",
     "country name", "city name"}
)  # fmt: skip

# A few common alternative country names; compared after normalise_name(). Extend as needed.
COUNTRY_ALIASES = {
    "usa": "united states",
    "us": "united states",
    "u s a": "united states",
    "u s": "united states",
    "united states of america": "united states",
    "america": "united states",
    "uk": "united kingdom",
    "u k": "united kingdom",
    "great britain": "united kingdom",
    "britain": "united kingdom",
    "england": "united kingdom",
    "scotland": "united kingdom",
    "wales": "united kingdom",
    "northern ireland": "united kingdom",
    "the netherlands": "netherlands",
    "holland": "netherlands",
    "czechia": "czech republic",
    "russian federation": "russia",
    "south korea": "korea",
    "republic of korea": "korea",
    "turkiye": "turkey",
    "uae": "united arab emirates",
    "prc": "china",
    "people s republic of china": "china",
    "viet nam": "vietnam",
    "deutschland": "germany",
    "norge": "norway",
    "sverige": "sweden",
    "espana": "spain",
    "italia": "italy",
}

# Letters NFKD does not decompose into base + combining mark.
_FOLD = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)


def normalise_name(name: str) -> str:
    """Case-, diacritics- and punctuation-insensitive form of a place name ("Bodø" -> "bodo")."""
    s = unicodedata.normalize("NFKD", str(name).casefold().translate(_FOLD))
    s = "".join(c for c in s if not unicodedata.combining(c)).translate(_FOLD)
    s = re.sub(r"[^\w]+", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def canonical_country(name: str) -> str:
    n = normalise_name(name)
    if n.startswith("the "):
        n = COUNTRY_ALIASES.get(n, n[4:])
    return COUNTRY_ALIASES.get(n, n)


def is_unknown(value: str) -> bool:
    v = str(value).strip().strip("*_`\"'[]()").strip().rstrip(".").casefold()
    return v in UNKNOWN_WORDS or bool(re.fullmatch(r"unknown\b.*", v))


def names_match(a: str, b: str, country: bool = False) -> bool:
    """Exact match after normalisation (and country aliases); empty never matches."""
    na, nb = (canonical_country(a), canonical_country(b)) if country else (
        normalise_name(a), normalise_name(b)
    )  # fmt: skip
    return bool(na) and na == nb


def loose_match(pred: str, truth: str, country: bool = False, ratio: float = 0.7) -> bool:
    """GLOBE's evaluation rule on normalised names: equal, or one contains the other and the
    shorter is at least ``ratio`` of the longer ("new york city" vs "new york")."""
    p = canonical_country(pred) if country else normalise_name(pred)
    t = canonical_country(truth) if country else normalise_name(truth)
    if not p or not t:
        return False
    if p == t:
        return True
    short, long_ = sorted((p, t), key=len)
    return short in long_ and len(short) / len(long_) >= ratio


# --------------------------------------------------------------------------- answer parsing
class GeoParseError(ValueError):
    """The reply holds no usable country, city or coordinates (the message says why)."""


@dataclass
class GeoAnswer:
    """One parsed reply. Empty strings for unknown names; NaN for unknown numbers."""

    country: str = ""
    city: str = ""
    latitude: float = math.nan
    longitude: float = math.nan
    confidence: float = math.nan
    reasoning: str = ""
    notes: list[str] = field(default_factory=list)  # what the parser had to work around
    candidates: int = 1

    @property
    def has_coordinates(self) -> bool:
        return math.isfinite(self.latitude) and math.isfinite(self.longitude)

    @property
    def unknown(self) -> bool:
        return not (self.country or self.city or self.has_coordinates)

    def label(self) -> str:
        parts = [self.country or "?", self.city or "?"]
        text = " / ".join(parts)
        if self.has_coordinates:
            text += f" ({self.latitude:.4f}, {self.longitude:.4f})"
        return text


_KEYS = {
    "country": "country",
    "nation": "country",
    "city": "city",
    "town": "city",
    "coordinates": "coords",
    "coordinate": "coords",
    "coords": "coords",
    "gps": "coords",
    "location": "coords",
    "latitude": "lat",
    "lat": "lat",
    "longitude": "lon",
    "lon": "lon",
    "lng": "lon",
    "long": "lon",
    "confidence": "confidence",
    "probability": "confidence",
    "certainty": "confidence",
}
_KEY_RE = re.compile(
    r"(?<![\w])[\"'*_`]*(" + "|".join(sorted(_KEYS, key=len, reverse=True)) + r")[\"'*_`]*"
    r"\s*(?:\([^)]{0,20}\))?\s*[:=]",
    re.IGNORECASE,
)
_ANSWER_RE = re.compile(r"<\s*answer\s*>(.*?)(?:<\s*/\s*answer\s*>|$)", re.IGNORECASE | re.DOTALL)
_NUM = r"[-+−]?\d{1,3}(?:\.\d+)?"
_COORD_RE = re.compile(
    rf"({_NUM})\s*°?\s*([NS])?\s*[,;/ ]\s*({_NUM})\s*°?\s*([EW])?(?![\w.])", re.IGNORECASE
)
_CANDIDATE_SPLIT = re.compile(
    r"(?:^|\n)\s*(?:\d+[.)]\s|[-*•]\s|candidate\s*\d*\s*[:.)]|option\s*\d*\s*[:.)])\s*",
    re.IGNORECASE,
)
_INLINE_CONFIDENCE = re.compile(
    r"(?:confiden\w*|probab\w*|certainty)\s*[:=]?\s*(\d+(?:\.\d+)?\s*%?)|\((\d+(?:\.\d+)?\s*%)\)",
    re.IGNORECASE,
)


def _num(s: str) -> float:
    return float(s.replace("−", "-"))


def _clean_value(v: str) -> str:
    v = v.strip().strip(";,|").strip()
    v = v.strip("*_`\"'").strip()
    v = re.sub(r"\s*\((?:[^)]*?(?:confiden|probab|%)[^)]*)\)\s*$", "", v, flags=re.IGNORECASE)
    v = re.sub(r"\s*\([^)]*\)\s*$", "", v) if re.search(r"\(\s*\d", v) else v
    v = v.strip().rstrip(".").strip().strip("*_`\"'[]").strip()
    return "" if is_unknown(v) else v


def _parse_coords(text: str) -> tuple[float, float] | None:
    m = _COORD_RE.search(text)
    if not m:
        return None
    lat, lon = _num(m.group(1)), _num(m.group(3))
    if (m.group(2) or "").upper() == "S":
        lat = -abs(lat)
    if (m.group(4) or "").upper() == "W":
        lon = -abs(lon)
    if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
        return lat, lon
    return None


def _parse_confidence(text: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(%)?", text)
    if not m:
        return math.nan
    v = float(m.group(1))
    if m.group(2) or v > 1.0:
        v /= 100.0
    return v if 0.0 <= v <= 1.0 else math.nan


def _fields(text: str) -> dict[str, str]:
    """``key: value`` pairs of one candidate; a value runs until the next key, ';' or newline."""
    out: dict[str, str] = {}
    matches = list(_KEY_RE.finditer(text))
    for i, m in enumerate(matches):
        key = _KEYS[m.group(1).lower()]
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end() : end]
        if key in ("country", "city"):
            value = re.split(r"[;\n|]", value)[0]
            value = re.sub(r",\s*$", "", value.strip())
        else:
            value = value.split("\n")[0]
        if key not in out:  # the first occurrence within one candidate wins
            out[key] = value
    if out and "confidence" not in out:  # "Paris (confidence 0.6)", "Paris (60%)"
        c = _INLINE_CONFIDENCE.search(text)
        if c:
            out["confidence"] = c.group(1) or c.group(2)
    return out


def _answer_from_fields(f: dict[str, str]) -> GeoAnswer | None:
    if not f:
        return None
    a = GeoAnswer()
    a.country = _clean_value(f.get("country", ""))
    a.city = _clean_value(f.get("city", ""))
    if a.city and "," in a.city:  # "Paris, France" or "Bodø, Nordland, Norway"
        head, *rest = [p.strip() for p in a.city.split(",")]
        if not a.country and rest:
            a.country = rest[-1]
        a.city = head
    coords = None
    if "coords" in f:
        coords = _parse_coords(f["coords"])
    if coords is None and "lat" in f and "lon" in f:
        try:
            lat_m = re.search(_NUM + r"\s*°?\s*[NS]?", f["lat"], re.IGNORECASE)
            lon_m = re.search(_NUM + r"\s*°?\s*[EW]?", f["lon"], re.IGNORECASE)
            if lat_m and lon_m:
                coords = _parse_coords(f"{lat_m.group(0)}, {lon_m.group(0)}")
        except ValueError:
            coords = None
    if coords is not None:
        a.latitude, a.longitude = coords
    if "confidence" in f:
        a.confidence = _parse_confidence(f["confidence"])
    return a


def _json_candidates(text: str) -> list[dict[str, Any]]:
    """Dicts from the first JSON object/array in the text (keys lower-cased)."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return []
    for end in range(len(text), start, -1):
        if text[end - 1] not in "}]":
            continue
        try:
            data = json.loads(text[start:end])
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            inner = next((v for v in data.values() if isinstance(v, list) and v), None)
            has_fields = any(str(k).lower() in _KEYS for k in data)
            items = inner if inner is not None and not has_fields else [data]
        elif isinstance(data, list):
            items = data
        else:
            return []
        return [{str(k).lower(): v for k, v in d.items()} for d in items if isinstance(d, dict)]
    return []


def _answer_from_json(d: dict[str, Any]) -> GeoAnswer | None:
    f: dict[str, str] = {}
    for k, v in d.items():
        key = _KEYS.get(k)
        if key is None:
            continue
        if isinstance(v, (list, tuple)) and len(v) == 2:
            v = f"{v[0]}, {v[1]}"
        elif isinstance(v, dict):
            lat = v.get("lat", v.get("latitude"))
            lon = v.get("lon", v.get("lng", v.get("longitude")))
            v = f"{lat}, {lon}" if lat is not None and lon is not None else ""
        f.setdefault(key, "" if v is None else str(v))
    return _answer_from_fields(f)


def _best(cands: list[GeoAnswer]) -> GeoAnswer:
    """The most confident candidate, or the first one when none gives a confidence."""
    useful = [c for c in cands if not c.unknown] or cands
    scored = [c for c in useful if math.isfinite(c.confidence)]
    best = max(scored, key=lambda c: c.confidence) if scored else useful[0]
    best.candidates = len(cands)
    return best


def _candidates(block: str) -> list[GeoAnswer]:
    js = _json_candidates(block)
    if js:
        found = [a for a in (_answer_from_json(d) for d in js) if a is not None]
        if found:
            return found
    parts = [p for p in _CANDIDATE_SPLIT.split(block) if _KEY_RE.search(p)]
    with_country = [p for p in parts if "country" in _fields(p)]
    if len(parts) > 1 and len(with_country) == len(parts):  # not just one field per bullet
        found = [a for a in (_answer_from_fields(_fields(p)) for p in parts) if a is not None]
        if found:
            return found
    a = _answer_from_fields(_fields(block))
    return [a] if a is not None else []


def _strip_think(text: str) -> str:
    t = re.sub(r"<\s*/?\s*think\s*>", "", text, flags=re.IGNORECASE)
    return t.strip()


def parse_answer(text: str) -> GeoAnswer:
    """Country, city, coordinates and confidence from a GLOBE-style reply.

    Reads the first ``<answer>`` block (a missing closing tag is tolerated); without one, the
    last ``Country:``/``City:`` fields of the whole reply (the final answer usually comes last).
    Several candidates (numbered/bulleted lines, a JSON list) -> the most confident, else the
    first. "unknown"-like values become empty strings. The reasoning is the text before the
    answer block, without ``<think>`` tags.

    Raises :class:`GeoParseError` when the reply holds no field at all (garbage, refusal, an empty
    reply). An explicit "unknown" answer is *not* an error: it parses to an answer whose
    ``unknown`` property is true.
    """
    if text is None or not str(text).strip():
        raise GeoParseError("empty reply from the model")
    text = str(text)
    notes: list[str] = []
    m = _ANSWER_RE.search(text)
    if m and m.group(1).strip():
        block = m.group(1)
        reasoning = _strip_think(text[: m.start()])
        if not re.search(r"<\s*/\s*answer\s*>", text, re.IGNORECASE):
            notes.append("no closing </answer> tag")
    else:
        notes.append("no <answer> block")
        reasoning = _strip_think(text)
        starts = [k.start() for k in _KEY_RE.finditer(text) if _KEYS[k.group(1).lower()] in
                  ("country", "city")]  # fmt: skip
        if _json_candidates(text):
            block = text
            reasoning = _strip_think(
                text[: min(i for i in (text.find("{"), text.find("[")) if i >= 0)]
            )
        elif starts:
            # The final answer usually comes last: from the last "Country:" (or "City:" when
            # the country is missing) to the end.
            countries = [
                k.start() for k in _KEY_RE.finditer(text) if _KEYS[k.group(1).lower()] == "country"
            ]
            block = text[countries[-1] :] if countries else text[starts[-1] :]
            if countries:
                reasoning = _strip_think(text[: countries[-1]])
        else:
            raise GeoParseError(
                "no <answer> block and no Country:/City: fields in the reply: " + _snippet(text)
            )
    cands = _candidates(block)
    if not cands:
        if is_unknown(re.sub(r"[^\w/?-]+", " ", block).strip()):
            cands = [GeoAnswer()]
        else:
            raise GeoParseError(f"answer block holds no Country/City fields: {_snippet(block)}")
    best = _best(cands)
    best.reasoning = reasoning
    best.notes = notes + ([f"{len(cands)} candidates"] if len(cands) > 1 else [])
    return best


def _snippet(text: str, n: int = 120) -> str:
    t = " ".join(str(text).split())
    return repr(t[:n] + ("..." if len(t) > n else ""))


# --------------------------------------------------------------------------- map catalog
MANIFEST = "manifest.yaml"  # the place map's manifest (core/place_map.py writes it)


@dataclass(frozen=True)
class MapEntry:
    path: Path
    country: str
    city: str
    places: int
    model_id: str
    tags: dict[str, str]


def read_map_entry(path: str | Path) -> MapEntry:
    """A saved map's tags and size from its manifest only (cheap: no index is read)."""
    p = Path(path)
    meta = yaml.safe_load((p / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{p / MANIFEST} is not a mapping")
    tags = {str(k): str(v) for k, v in (meta.get("tags") or {}).items()}
    return MapEntry(
        path=p,
        country=tags.get("country", ""),
        city=tags.get("city", ""),
        places=int(meta.get("count", 0) or 0),
        model_id=str(meta.get("model_id", "")),
        tags=tags,
    )


def scan_maps(root: str | Path) -> list[MapEntry]:
    """Every saved map in ``root`` (itself, or its immediate sub-folders), sorted by path.

    Folders left by an interrupted save (``*.saving``, ``*.old``) and unreadable manifests are
    skipped.
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"maps root {r} is not a folder")
    dirs = [r] if (r / MANIFEST).is_file() else []
    dirs += sorted(
        d
        for d in r.iterdir()
        if d.is_dir() and (d / MANIFEST).is_file() and not d.name.endswith((".saving", ".old"))
    )
    out = []
    for d in dirs:
        try:
            out.append(read_map_entry(d))
        except (OSError, ValueError, yaml.YAMLError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class MapChoice:
    entry: MapEntry
    level: str  # "city" or "country"


def select_map(
    entries: Iterable[MapEntry],
    country: str,
    city: str,
    model_id: str | None = None,
) -> MapChoice | None:
    """The map that best fits an estimate: a city match beats a country match; ties go to the
    map with the most places (then the path, for a stable choice). Names compare case- and
    diacritics-insensitively (country aliases such as USA/United States included). A city match
    needs the countries not to contradict (Paris, Texas is not Paris, France). With ``model_id``,
    only maps built with that model are considered. None when nothing matches."""
    best: tuple[int, int, str] | None = None
    choice: MapChoice | None = None
    for e in entries:
        if model_id is not None and e.model_id != model_id:
            continue
        country_ok = names_match(country, e.country, country=True)
        countries_conflict = bool(
            canonical_country(country) and canonical_country(e.country) and not country_ok
        )
        if names_match(city, e.city) and not countries_conflict:
            level, rank = "city", 2
        elif country_ok:
            level, rank = "country", 1
        else:
            continue
        key = (rank, e.places, str(e.path))
        # Highest rank, most places; the path only breaks exact ties (smallest path wins).
        if (
            best is None
            or (key[0], key[1]) > (best[0], best[1])
            or ((key[0], key[1]) == (best[0], best[1]) and key[2] < best[2])
        ):
            best, choice = key, MapChoice(e, level)
    return choice


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """``["country=Norway", "city=Bodø"]`` -> dict; ``key=`` (empty) removes a tag."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"tag {item!r} is not key=value")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise ValueError(f"tag {item!r} has an empty key")
        out[k] = v.strip()
    return out


# --------------------------------------------------------------------------- evaluation
EARTH_RADIUS_KM = 6371.0
DISTANCE_THRESHOLDS_KM = (1.0, 25.0, 200.0, 750.0, 2500.0)

# Accepted ground-truth CSV columns (header names compared case-insensitively):
IMAGE_COLUMNS = ("img_id", "image", "image_path", "img_path", "file", "filename", "path", "id")
LAT_COLUMNS = ("lat", "latitude", "gps_lat")
LON_COLUMNS = ("lon", "lng", "long", "longitude", "gps_lon")
COUNTRY_COLUMNS = ("country",)
CITY_COLUMNS = ("city",)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance [km] between two WGS84 points (spherical Earth, R = 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass
class GroundTruth:
    image: Path
    country: str = ""
    city: str = ""
    latitude: float = math.nan
    longitude: float = math.nan

    @property
    def has_coordinates(self) -> bool:
        return math.isfinite(self.latitude) and math.isfinite(self.longitude)


def _column(header: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {h.strip().lower(): h for h in header}
    return next((lower[n] for n in names if n in lower), None)


def read_ground_truth(csv_path: str | Path, image_dir: str | Path) -> list[GroundTruth]:
    """Rows of an Im2GPS3k-style (``IMG_ID, LAT, LON`` [+ ``country``, ``city``]) or
    MP16-Reason-style (image path + ``country``, ``city`` [+ ``lat``/``lon``]) CSV.

    The image column is the first of :data:`IMAGE_COLUMNS` present; its value is a path relative
    to ``image_dir`` (or absolute); like GLOBE's evaluation, ``.jpg`` is appended when the name
    has no suffix. Rows whose image is missing raise, naming the row.
    """
    path = Path(csv_path)
    root = Path(image_dir)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        img_col = _column(header, IMAGE_COLUMNS)
        if img_col is None:
            raise ValueError(
                f"{path}: no image column (one of {', '.join(IMAGE_COLUMNS)}; got {header})"
            )
        lat_col, lon_col = _column(header, LAT_COLUMNS), _column(header, LON_COLUMNS)
        country_col, city_col = _column(header, COUNTRY_COLUMNS), _column(header, CITY_COLUMNS)
        if not (country_col or city_col or (lat_col and lon_col)):
            raise ValueError(f"{path}: needs country/city columns or LAT/LON columns ({header})")
        rows = []
        for n, row in enumerate(reader, start=2):
            name = (row.get(img_col) or "").strip()
            if not name:
                continue
            img = Path(name)
            if not img.suffix:
                img = img.with_suffix(".jpg")
            if not img.is_absolute():
                img = root / img
            if not img.is_file():
                raise FileNotFoundError(f"{path}:{n}: image {img} not found")
            gt = GroundTruth(image=img)
            gt.country = (row.get(country_col) or "").strip() if country_col else ""
            gt.city = (row.get(city_col) or "").strip() if city_col else ""
            if lat_col and lon_col:
                try:
                    lat, lon = float(row[lat_col]), float(row[lon_col])
                    if -90 <= lat <= 90 and -180 <= lon <= 180:
                        gt.latitude, gt.longitude = lat, lon
                except (TypeError, ValueError):
                    pass
            rows.append(gt)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def score_geo(truths: Sequence[GroundTruth], answers: Sequence[GeoAnswer | None]) -> dict[str, Any]:
    """Country/city accuracy (GLOBE's loose name match) and distance accuracy at
    :data:`DISTANCE_THRESHOLDS_KM`. A failed request or unparsable reply (None) counts as wrong.
    Each metric's denominator is the rows that have that ground truth; a metric without any is
    null."""
    n = len(truths)
    c_n = c_ok = t_n = t_ok = d_n = 0
    within = dict.fromkeys(DISTANCE_THRESHOLDS_KM, 0)
    dists: list[float] = []
    for gt, a in zip(truths, answers, strict=True):
        if gt.country:
            c_n += 1
            c_ok += bool(a and loose_match(a.country, gt.country, country=True))
        if gt.city:
            t_n += 1
            t_ok += bool(a and loose_match(a.city, gt.city))
        if gt.has_coordinates:
            d_n += 1
            if a is not None and a.has_coordinates:
                d = haversine_km(gt.latitude, gt.longitude, a.latitude, a.longitude)
                dists.append(d)
                for thr in DISTANCE_THRESHOLDS_KM:
                    within[thr] += d <= thr
    failed = sum(a is None for a in answers)
    out: dict[str, Any] = {
        "images": n,
        "answered": n - failed,
        "failed": failed,
        "country_accuracy": c_ok / c_n if c_n else None,
        "country_rows": c_n,
        "city_accuracy": t_ok / t_n if t_n else None,
        "city_rows": t_n,
        "coordinate_rows": d_n,
        "with_predicted_coordinates": len(dists),
        "median_distance_km": float(sorted(dists)[len(dists) // 2]) if dists else None,
    }
    for thr in DISTANCE_THRESHOLDS_KM:
        out[f"acc@{thr:g}km"] = within[thr] / d_n if d_n else None
    return out
