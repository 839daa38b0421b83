"""GPS-tagged data: lat/lon -> UTM, CSV and @UTM@ file-name loaders, clustering."""

import shutil

import pytest

pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

import numpy as np

from lavpr_train import geo
from lavpr_train.paths import dataset_dir


def _images(n):
    try:
        return sorted((dataset_dir("corridor") / "ref").glob("*.jpg"))[:n]
    except FileNotFoundError:
        pytest.skip("shared data not found (set LAVPR_DATA)")


def test_utm_central_meridian_and_equator():
    e, n, zone, north = geo.latlon_to_utm(0.0, 3.0)
    assert zone == 31 and north and abs(e[0] - 500000) < 1e-6 and abs(n[0]) < 1e-6
    e, n, zone, north = geo.latlon_to_utm(-33.0, 151.0)  # Sydney: southern offset
    assert zone == 56 and not north and 6.0e6 < n[0] < 6.5e6
    assert geo.utm_zone(60.0, 5.0) == 32  # Norway exception


def test_utm_distances_match_ellipsoid():
    lat0, lon0 = 47.3769, 8.5417  # Zurich, UTM 32T ~ (465403, 5247151)
    lats = lat0 + np.array([0.0, 0.0002, 0.0009, 0.003])
    lons = lon0 + np.array([0.0, 0.0003, -0.0007, 0.004])
    e, n, zone, _ = geo.latlon_to_utm(lats, lons)
    assert zone == 32 and abs(e[0] - 465403.3) < 1.0 and abs(n[0] - 5247150.8) < 1.0
    # local WGS84 ellipsoid distances, scaled by the UTM scale factor at that easting
    a, f = 6378137.0, 1 / 298.257223563
    e2, phi = f * (2 - f), np.radians(lat0)
    m_rad = a * (1 - e2) / (1 - e2 * np.sin(phi) ** 2) ** 1.5
    n_rad = a / np.sqrt(1 - e2 * np.sin(phi) ** 2)
    d = np.hypot(m_rad * np.radians(lats - lat0), n_rad * np.cos(phi) * np.radians(lons - lon0))
    k = 0.9996 * (1 + (e[0] - 500000) ** 2 / (2 * 6371000.0**2))
    assert np.allclose(np.hypot(e - e[0], n - n[0])[1:], k * d[1:], rtol=2e-5)
    # and the spherical great-circle distance within its own ~0.5 % error
    gc = geo.haversine_m(lat0, lon0, lats, lons)
    assert np.allclose(np.hypot(e - e[0], n - n[0])[1:], gc[1:], rtol=5e-3)


def test_csv_latlon_and_optional_columns(tmp_path):
    imgs = _images(4)
    rows = ["image,lat,lon,place_id,description,sequence,time"]
    for i, p in enumerate(imgs):
        rows.append(f"{p},{47.0 + i * 1e-4},{8.0},p{i // 2},hall {i},s{i % 2},{i * 0.5}")
    (tmp_path / "a.csv").write_text("\n".join(rows))
    s = geo.load_csv(tmp_path / "a.csv")
    assert len(s) == 4 and s.paths == imgs
    assert s.place.tolist() == [0, 0, 1, 1]
    assert s.text[2] == "hall 2" and s.sequence == ["s0", "s1", "s0", "s1"]
    assert np.allclose(s.time, [0, 0.5, 1.0, 1.5])
    step = np.linalg.norm(s.xy[1] - s.xy[0])
    assert 10.5 < step < 11.8  # 1e-4 deg latitude ~ 11.1 m


def test_csv_utm_columns_relative_paths(tmp_path):
    imgs = _images(3)
    for p in imgs:
        shutil.copy(p, tmp_path / p.name)
    text = "path,utm_east,utm_north\n" + "\n".join(
        f"{p.name},{500000 + 30 * i},{5000000}" for i, p in enumerate(imgs)
    )
    (tmp_path / "b.csv").write_text(text)
    s = geo.load_csv(tmp_path / "b.csv")
    assert np.allclose(s.xy[:, 0] - s.xy[0, 0], [0, 30, 60]) and s.place is None
    with pytest.raises(ValueError, match="lat/lon or east/north"):
        (tmp_path / "c.csv").write_text(f"image,foo\n{imgs[0].name},1\n")
        geo.load_csv(tmp_path / "c.csv")


def test_utm_filename_folder(tmp_path):
    imgs = _images(3)
    seq = tmp_path / "city" / "database"
    seq.mkdir(parents=True)
    for i, p in enumerate(imgs):
        east = f"{584000.5 + 10 * i:.2f}"
        name = f"@{east}@4477000.25@17@T@40.44@-79.99@pano{i}@@@@@@{1000 + i}@.jpg"
        shutil.copy(p, seq / name)
    f = geo.parse_utm_name((seq / name).name)
    assert f["east"] == pytest.approx(584020.5) and f["zone_number"] == "17"
    assert f["timestamp"] == "1002"
    s = geo.load_utm_folder(tmp_path)
    assert len(s) == 3 and s.sequence == ["city/database"] * 3
    assert np.allclose(np.diff(s.xy[:, 0]), 10) and np.allclose(s.time, [1000, 1001, 1002])
    with pytest.raises(ValueError):
        geo.parse_utm_name("images-00010.png")


def test_clustering_grid_and_dbscan():
    xy = np.array([[0, 0], [5, 0], [100, 0], [104, 3], [300, 300]], dtype=float)
    g = geo.cluster_places(xy, 12.5, "grid")
    assert g[0] == g[1] and g[2] == g[3] and len(set(g.tolist())) == 3
    d = geo.cluster_places(xy, 10.0, "dbscan")
    assert d[0] == d[1] and d[2] == d[3] and len(set(d.tolist())) == 3


def test_nordland_pseudo_coordinates_and_geo_retrieval():
    try:
        s = geo.nordland_geo(100, 110)
    except FileNotFoundError:
        pytest.skip("shared data not found")
    assert len(s) == 20 and s.place[:10].tolist() == list(range(100, 110))
    assert np.allclose(s.xy[:10], s.xy[10:])
    rs = geo.retrieval_from_geo(s, "winter", radius=25.0)
    assert len(rs.query_paths) == 10 and rs.positives[5] == {4, 5, 6}
