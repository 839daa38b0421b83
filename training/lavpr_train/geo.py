"""GPS-tagged image collections: CSV files, ``@UTM_east@UTM_north@...`` file names, image-pair
folders; lat/lon -> UTM (own implementation, WGS84); GPS clustering into place labels.

Everything becomes a :class:`GeoSamples`: image paths with metric coordinates (UTM metres) and
optional place id, text description, sequence id and time. Coordinates from different UTM zones
are kept apart by a large per-zone offset, so distances across zones are always "far".
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import data

# --- lat/lon -> UTM (WGS84, Krueger series to 3rd order: sub-millimetre inside a zone) -----

_A = 6378137.0
_F = 1 / 298.257223563
_K0 = 0.9996
_N = _F / (2 - _F)
_A_HAT = _A / (1 + _N) * (1 + _N**2 / 4 + _N**4 / 64)
_ALPHA = (
    _N / 2 - 2 * _N**2 / 3 + 5 * _N**3 / 16,
    13 * _N**2 / 48 - 3 * _N**3 / 5,
    61 * _N**3 / 240,
)
ZONE_OFFSET_M = 1e7  # per-zone offset added to easting so zones never mix


def utm_zone(lat: float, lon: float) -> int:
    """UTM zone number, with the Norway/Svalbard exceptions."""
    zone = int((lon + 180) // 6) % 60 + 1
    if 56 <= lat < 64 and 3 <= lon < 12:
        return 32
    if 72 <= lat < 84 and lon >= 0:
        for lo, hi, z in ((0, 9, 31), (9, 21, 33), (21, 33, 35), (33, 42, 37)):
            if lo <= lon < hi:
                return z
    return zone


def latlon_to_utm(
    lat: float | np.ndarray, lon: float | np.ndarray, zone: int | None = None
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """(east, north, zone, northern) for WGS84 degrees; all points use one ``zone`` (default:
    the zone of the first point). Southern hemisphere northings get the usual 10,000 km offset."""
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    if np.any(np.abs(lat) > 84.5):
        raise ValueError("UTM is defined between 80S and 84N")
    zone = zone or utm_zone(float(lat[0]), float(lon[0]))
    northern = bool(lat[0] >= 0)
    lon0 = math.radians((zone - 1) * 6 - 180 + 3)
    phi, lam = np.radians(lat), np.radians(lon) - lon0
    e = 2 * math.sqrt(_N) / (1 + _N)
    t = np.sinh(np.arctanh(np.sin(phi)) - e * np.arctanh(e * np.sin(phi)))
    xi = np.arctan2(t, np.cos(lam))
    eta = np.arctanh(np.sin(lam) / np.sqrt(1 + t**2))
    east = eta.copy()
    north = xi.copy()
    for j, a in enumerate(_ALPHA, start=1):
        east += a * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
        north += a * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
    east = 500000.0 + _K0 * _A_HAT * east
    north = _K0 * _A_HAT * north + (0.0 if northern else 10000000.0)
    return east, north, zone, northern


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres (mean Earth radius), for checks."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(h))


# --- the sample collection -----------------------------------------------------------------


@dataclass
class GeoSamples:
    """Images with metric positions; ``xy`` is (N, 2) metres (east + zone offset, north)."""

    name: str
    paths: list[Path]
    xy: np.ndarray
    place: np.ndarray | None = None  # int labels, given or from :func:`cluster_places`
    text: list[str] | None = None
    sequence: list[str] | None = None
    time: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: Sequence[int] | np.ndarray) -> GeoSamples:
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        return GeoSamples(
            self.name,
            [self.paths[i] for i in idx],
            self.xy[idx],
            None if self.place is None else self.place[idx],
            pick(self.text),
            pick(self.sequence),
            None if self.time is None else self.time[idx],
            dict(self.meta),
        )

    def ensure_places(self, radius: float = 12.5) -> np.ndarray:
        if self.place is None:
            self.place = cluster_places(self.xy, radius)
        return self.place


def _zone_key(zone: int, northern: bool) -> int:
    return zone * 2 + (0 if northern else 1)


def _zone_key_str(zone: str) -> int:
    """Deterministic key for a zone string like ``17T`` / ``33`` / ``""``."""
    digits = "".join(c for c in str(zone) if c.isdigit())
    letter = "".join(c for c in str(zone) if c.isalpha()).upper()
    return _zone_key(int(digits) if digits else 0, not letter or letter >= "N")


_COLS = {
    "path": ("image", "path", "image_path", "file", "filename"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "east": ("east", "easting", "utm_east", "x"),
    "north": ("north", "northing", "utm_north", "y"),
    "zone": ("zone", "utm_zone"),
    "place": ("place_id", "place", "label"),
    "text": ("text", "description", "caption"),
    "sequence": ("sequence", "sequence_id", "seq", "seq_id"),
    "time": ("time", "timestamp", "stamp"),
}


def _find(header: list[str], key: str) -> str | None:
    low = {h.strip().lower(): h for h in header}
    for cand in _COLS[key]:
        if cand in low:
            return low[cand]
    return None


def load_csv(path: str | Path, image_root: str | Path | None = None) -> GeoSamples:
    """Read a GPS-tagged image CSV.

    Columns (case-insensitive, first match wins): image path (``image``/``path``/...; relative
    to ``image_root`` or the CSV's folder); either ``lat``/``lon`` (WGS84 degrees, converted to
    UTM in the zone of each row, zones kept apart) or ``east``/``north`` (metres, optional
    ``zone``); optional ``place_id``, ``text``/``description``, ``sequence``, ``time``.
    """
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    header = list(rows[0].keys())
    cols = {k: _find(header, k) for k in _COLS}
    if cols["path"] is None:
        raise ValueError(f"{path}: no image path column (one of {_COLS['path']})")
    paths = [root / r[cols["path"]] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} images missing, e.g. {missing[0]}")
    if cols["lat"] and cols["lon"]:
        lat = np.array([float(r[cols["lat"]]) for r in rows])
        lon = np.array([float(r[cols["lon"]]) for r in rows])
        xy = np.zeros((len(rows), 2))
        keys = np.array([_zone_key(utm_zone(a, o), a >= 0) for a, o in zip(lat, lon, strict=True)])
        for k in np.unique(keys):
            sel = keys == k
            e, n, _, _ = latlon_to_utm(lat[sel], lon[sel], zone=int(k) // 2)
            xy[sel] = np.stack([e + k * ZONE_OFFSET_M, n], 1)
    elif cols["east"] and cols["north"]:
        zone_keys = [_zone_key_str(r[cols["zone"]]) if cols["zone"] else 0 for r in rows]
        xy = np.array(
            [
                [float(r[cols["east"]]) + z * ZONE_OFFSET_M, float(r[cols["north"]])]
                for r, z in zip(rows, zone_keys, strict=True)
            ]
        )
    else:
        raise ValueError(f"{path}: need lat/lon or east/north columns (header: {header})")

    def opt(key, conv=str):
        c = cols[key]
        return None if c is None else [conv(r[c]) for r in rows]

    place = opt("place")
    if place is not None:
        _, place = np.unique(np.asarray(place), return_inverse=True)
    times = opt("time", float)
    return GeoSamples(
        path.stem,
        paths,
        xy,
        place=None if place is None else place.astype(np.int64),
        text=opt("text"),
        sequence=opt("sequence"),
        time=None if times is None else np.asarray(times),
        meta={"source": str(path)},
    )


def parse_utm_name(name: str) -> dict:
    """Fields of the ``@UTM_east@UTM_north@zone_number@zone_letter@lat@lon@pano_id@...`` file
    name convention (MSLS / Pittsburgh / Tokyo / SF-XL as packaged by VPR-datasets-downloader;
    GSV-Cities images converted to it). Only east and north are required."""
    parts = Path(name).name.split("@")
    if len(parts) < 3 or parts[0] != "":
        raise ValueError(f"not an @UTM_east@UTM_north@... file name: {name}")
    out: dict = {"east": float(parts[1]), "north": float(parts[2])}
    labels = ("zone_number", "zone_letter", "lat", "lon", "pano_id", "tile", "heading")
    for key, value in zip(labels, parts[3:], strict=False):
        if value:
            out[key] = value
    if len(parts) > 13 and parts[13]:
        out["timestamp"] = parts[13]
    return out


IMAGE_EXT = (".jpg", ".jpeg", ".png")


def load_utm_folder(folder: str | Path, recursive: bool = True) -> GeoSamples:
    """Every image under ``folder`` whose name follows the ``@east@north@...`` convention."""
    folder = Path(folder)
    files = sorted(
        p
        for p in (folder.rglob("*") if recursive else folder.iterdir())
        if p.suffix.lower() in IMAGE_EXT and p.name.startswith("@")
    )
    if not files:
        raise FileNotFoundError(f"no @UTM_east@UTM_north@... images under {folder}")
    xy, seq, times = [], [], []
    for p in files:
        f = parse_utm_name(p.name)
        zone = f.get("zone_number", "0") + f.get("zone_letter", "")
        xy.append([f["east"] + _zone_key_str(zone) * ZONE_OFFSET_M, f["north"]])
        seq.append(str(p.parent.relative_to(folder)))
        times.append(f.get("timestamp"))
    t = None
    if all(x is not None for x in times):
        try:
            t = np.array([float(x) for x in times])
        except ValueError:
            t = None
    return GeoSamples(folder.name, files, np.asarray(xy, dtype=np.float64), sequence=seq, time=t)


def nordland_geo(start: int = 0, stop: int | None = None, spacing_m: float = 20.0) -> GeoSamples:
    """Nordland summer + winter frames as GeoSamples with pseudo coordinates: frame i lies at
    ``i * spacing_m`` along a straight line (the dataset has no GPS). With 20 m spacing, the
    default 25 m / 100 m radii make +-1 frame positive and >= 5 frames negative; the place
    label is the frame index."""
    summer, winter = data.nordland_pairs()
    summer, winter = summer[start:stop], winter[start:stop]
    idx = np.arange(start, start + len(summer))
    xy = np.stack([idx * spacing_m, np.zeros(len(idx))], 1).astype(np.float64)
    return GeoSamples(
        f"nordland[{start}:{stop}]",
        list(summer) + list(winter),
        np.concatenate([xy, xy]),
        place=np.concatenate([idx, idx]).astype(np.int64),
        sequence=["summer"] * len(summer) + ["winter"] * len(winter),
    )


def retrieval_from_geo(
    samples: GeoSamples, query_sequence: str, radius: float = 25.0
) -> data.RetrievalSet:
    """Queries = samples of ``query_sequence``, map = the rest; positives within ``radius``."""
    if samples.sequence is None:
        raise ValueError(f"{samples.name}: needs a sequence column to split queries from the map")
    q = np.array([s == query_sequence for s in samples.sequence])
    if not q.any() or q.all():
        raise ValueError(f"{samples.name}: sequence '{query_sequence}' must be a strict subset")
    mi, qi = np.flatnonzero(~q), np.flatnonzero(q)
    d = np.linalg.norm(samples.xy[qi, None, :] - samples.xy[None, mi, :], axis=2)
    positives = [set(np.flatnonzero(row <= radius).tolist()) for row in d]
    return data.RetrievalSet(
        f"{samples.name}:{query_sequence}",
        [samples.paths[i] for i in mi],
        [samples.paths[i] for i in qi],
        positives,
    )


# --- clustering ------------------------------------------------------------------------------


def cluster_places(xy: np.ndarray, radius: float = 12.5, method: str = "grid") -> np.ndarray:
    """Place labels from positions.

    ``grid``: cells of ``2 * radius`` metres (fast, deterministic, what GSV-Cities-style place
    grouping needs). ``dbscan``: scikit-learn DBSCAN with ``eps=radius`` and ``min_samples=1``
    (chains of nearby images become one place - good for sparse, irregular captures).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if method == "grid":
        cells = np.floor(xy / (2 * radius)).astype(np.int64)
        _, labels = np.unique(cells, axis=0, return_inverse=True)
        return labels.reshape(-1).astype(np.int64)
    if method == "dbscan":
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=radius, min_samples=1).fit(xy).labels_.astype(np.int64)
    raise ValueError(f"unknown clustering method '{method}' (grid, dbscan)")


def load_source(spec: dict) -> GeoSamples:
    """A training source from a config entry: ``{kind: nordland, start, stop}``,
    ``{kind: csv, path, image_root}`` or ``{kind: utm_folder, path}``."""
    kind = spec.get("kind", "nordland")
    if kind == "nordland":
        return nordland_geo(spec.get("start", 0), spec.get("stop"), spec.get("spacing_m", 20.0))
    if kind == "csv":
        return load_csv(spec["path"], spec.get("image_root"))
    if kind == "utm_folder":
        return load_utm_folder(spec["path"])
    raise ValueError(f"unknown data kind '{kind}' (nordland, csv, utm_folder)")


def load_val(spec: str | dict) -> data.RetrievalSet:
    """A validation set: ``corridor``, ``nordland:START:STOP``, or
    ``{kind: csv|utm_folder, path, query_sequence, radius}``."""
    if isinstance(spec, str):
        if spec == "corridor":
            return data.corridor()
        if spec.startswith("nordland"):
            parts = ([*spec.split(":"), "", ""])[1:3]
            start = int(parts[0]) if parts[0] else 0
            stop = int(parts[1]) if parts[1] else None
            return data.nordland(1, start, stop)
        raise ValueError(f"unknown validation set '{spec}'")
    s = load_source(spec)
    return retrieval_from_geo(s, spec["query_sequence"], spec.get("radius", 25.0))
