"""PlaceMap: adding, search with exclusions, approximate indexes, persistence and crash safety."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lavpr_ros.core.place_map import MapFormatError, MapMismatchError, Place, PlaceMap

DIM = 32


def _unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _filled(n: int = 50, index_type: str = "flat", **kw) -> tuple[PlaceMap, np.ndarray]:
    x = _unit(n)
    m = PlaceMap(DIM, "model-a", index_type, **kw)
    for i, d in enumerate(x):
        pose = [i, 0, 0, 0, 0, 0, 2.0] if i % 2 == 0 else None
        assert m.add(d * 3.0, stamp=10.0 + i, pose=pose, description=f"p{i}") == i
    return m, x


def test_add_get_and_search() -> None:
    m, x = _filled()
    assert len(m) == 50 and m.last_id == 49
    np.testing.assert_allclose(m.descriptors, x, atol=1e-6)  # stored normalised
    p = m.get(4)
    assert isinstance(p, Place) and p.stamp == 14.0 and p.description == "p4"
    np.testing.assert_allclose(p.pose, [4, 0, 0, 0, 0, 0, 1.0])  # quaternion normalised
    assert m.get(5).pose is None
    res = m.search(x[7], k=3)
    assert res[0][0] == 7 and res[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(res) == 3 and res[0][1] >= res[1][1] >= res[2][1]
    exact = x @ x[7]
    assert [i for i, _ in res] == list(np.argsort(-exact)[:3])
    np.testing.assert_allclose(m.similarities(x[7]), exact, atol=1e-5)
    assert [p.id for p in m.places] == list(range(50)) and len(m.places) == 50
    assert [p.id for p in m.places()][:2] == [0, 1]


def test_exclusions_return_k_eligible() -> None:
    m, x = _filled()
    res = m.search(x[45], k=5, exclude_last_n=10)
    assert len(res) == 5 and all(i < 40 for i, _ in res)
    res = m.search(x[45], k=5, exclude_after_stamp=30.0)  # ids 0..20 have stamp <= 30
    assert len(res) == 5 and all(i <= 20 for i, _ in res)
    exact = x[:21] @ x[45]
    assert [i for i, _ in res] == list(np.argsort(-exact)[:5])
    res = m.search(x[0], k=5, exclude_last_n=48)  # only 2 eligible: both, best first
    assert [i for i, _ in res] == [0, 1]
    assert m.search(x[0], k=5, exclude_last_n=50) == []
    assert m.search(x[0], k=5, exclude_after_stamp=0.0) == []


def test_exclusion_with_unordered_stamps() -> None:
    m = PlaceMap(DIM, "m")
    x = _unit(30, seed=4)
    stamps = np.random.default_rng(1).permutation(30).astype(float)
    for d, s in zip(x, stamps, strict=True):
        m.add(d, s)
    res = m.search(x[3], k=4, exclude_after_stamp=9.5)
    assert len(res) == 4 and all(stamps[i] <= 9.5 for i, _ in res)
    elig = np.flatnonzero(stamps <= 9.5)
    best = elig[np.argsort(-(x[elig] @ x[3]))[:4]]
    assert [i for i, _ in res] == list(best)


def test_empty_map() -> None:
    m = PlaceMap(DIM, "m")
    assert len(m) == 0 and m.last_id is None
    assert m.search(_unit(1)[0]) == []
    assert m.similarities(_unit(1)[0]).shape == (0,)
    assert m.descriptors.shape == (0, DIM)


@pytest.mark.parametrize(
    ("desc", "match"),
    [
        (np.full(DIM, np.nan), "NaN/inf"),
        (np.r_[np.inf, np.ones(DIM - 1)], "NaN/inf"),
        (np.ones(DIM + 1), r"shape \(32,\)"),
        (np.ones((2, DIM)), r"shape \(32,\)"),
        (np.zeros(DIM), "all-zero"),
    ],
)
def test_bad_descriptors_refused_and_nothing_added(desc, match) -> None:
    m, _ = _filled(5)
    with pytest.raises(ValueError, match=match):
        m.add(desc, 1.0)
    assert len(m) == 5 and m.index.ntotal == 5 and len(m.descriptors) == 5


@pytest.mark.parametrize(
    ("pose", "stamp", "match"),
    [
        ([0, 0, 0, 0, 0, 0, np.nan], 1.0, "non-finite"),
        ([0, 0, 0, 1], 1.0, "shape"),
        ([0, 0, 0, 0, 0, 0, 0], 1.0, "quaternion is zero"),
        (None, float("nan"), "stamp"),
    ],
)
def test_bad_pose_or_stamp_refused(pose, stamp, match) -> None:
    m, x = _filled(3)
    with pytest.raises(ValueError, match=match):
        m.add(x[0], stamp, pose=pose)
    assert len(m) == 3 and len(list(m.places)) == 3


def test_bad_query_refused() -> None:
    m, _ = _filled(3)
    with pytest.raises(ValueError, match="query"):
        m.search(np.zeros(DIM))
    with pytest.raises(ValueError, match="query"):
        m.similarities(np.ones(DIM + 1))


def test_descriptions_and_unknown_ids() -> None:
    m, _ = _filled(3)
    m.set_description(1, "kitchen")
    assert m.get(1).description == "kitchen"
    with pytest.raises(KeyError, match="no place with id 3"):
        m.set_description(3, "x")
    with pytest.raises(KeyError):
        m.get(-1)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="index_type"):
        PlaceMap(DIM, "m", "lsh")
    with pytest.raises(ValueError, match="pq_m"):
        PlaceMap(30, "m", "ivfpq", pq_m=16)


def _recall(m: PlaceMap, queries: np.ndarray, base: np.ndarray, k: int = 5) -> float:
    hits = 0
    for q in queries:
        truth = set(np.argsort(-(base @ q))[:k].tolist())
        hits += len(truth & {i for i, _ in m.search(q, k)})
    return hits / (k * len(queries))


def test_hnsw_recall_vs_exact() -> None:
    base = _unit(3000, seed=1)
    m = PlaceMap(DIM, "m", "hnsw", hnsw_m=16)
    m.add_batch(base, np.arange(3000.0))
    queries = _unit(50, seed=2)
    assert _recall(m, queries, base) >= 0.9
    res = m.search(queries[0], k=5, exclude_last_n=2990)
    assert len(res) == 5 and all(i < 10 for i, _ in res)


def test_ivfpq_untrained_falls_back_then_trains() -> None:
    m = PlaceMap(DIM, "m", "ivfpq", ivf_nlist=16, pq_m=8, ivf_nprobe=8)
    assert m.ivf_train_size == 39 * 256
    base = _unit(12_000, seed=3)
    m.add_batch(base[:5000], np.arange(5000.0))
    assert not m.index.is_trained
    queries = _unit(40, seed=5)
    assert _recall(m, queries, base[:5000]) == 1.0  # exact fallback
    m.add_batch(base[5000:], np.arange(5000.0, 12_000.0))
    assert m.index.is_trained and m.index.ntotal == 12_000
    r = _recall(m, queries, base)
    assert r >= 0.6, r  # PQ on 32-d random data, re-scored exactly
    q = base[77]
    top = m.search(q, k=3)
    assert top[0][0] == 77 and top[0][1] == pytest.approx(1.0, abs=1e-5)  # exact re-scoring


def test_save_load_roundtrip(tmp_path: Path) -> None:
    m, x = _filled(40, frame_id="odom")
    m.tags.update(country="NO", city="Trondheim")
    out = m.save(tmp_path / "map")
    assert {p.name for p in out.iterdir()} == {
        "index.faiss",
        "places.sqlite",
        "descriptors.npy",
        "manifest.yaml",
    }
    meta = yaml.safe_load((out / "manifest.yaml").read_text())
    assert (
        meta["count"] == 40
        and meta["model_id"] == "model-a"
        and set(meta["sha256"])
        == {
            "index.faiss",
            "places.sqlite",
            "descriptors.npy",
        }
    )
    m2 = PlaceMap.load(out, expected_model_id="model-a", expected_dim=DIM)
    assert len(m2) == 40 and m2.tags == m.tags and m2.frame_id == "odom"
    np.testing.assert_array_equal(m2.descriptors, m.descriptors)
    for a, b in zip(m.places, m2.places, strict=True):
        assert (a.id, a.stamp, a.description) == (b.id, b.stamp, b.description)
        assert (a.pose is None) == (b.pose is None)
        if a.pose is not None:
            np.testing.assert_allclose(a.pose, b.pose)
    assert m2.search(x[3], 5) == m.search(x[3], 5)
    m2.add(x[0], 100.0)  # a loaded map keeps growing
    assert len(m2) == 41 and m2.search(x[0], 1, exclude_last_n=0)[0][1] == pytest.approx(1.0)
    m2.save(out)  # overwrite in place
    assert len(PlaceMap.load(out)) == 41
    assert not list(tmp_path.glob("map.*"))  # no leftovers


@pytest.mark.parametrize("index_type", ["hnsw", "ivfpq"])
def test_save_load_approximate(tmp_path: Path, index_type: str) -> None:
    base = _unit(10_000, seed=9)
    m = PlaceMap(DIM, "m", index_type, ivf_nlist=16, pq_m=8)
    m.add_batch(base, np.arange(10_000.0))
    m.save(tmp_path / "map")
    m2 = PlaceMap.load(tmp_path / "map")
    assert m2.index_type == index_type and m2.index.ntotal == 10_000
    for q in base[:5]:
        assert m2.search(q, 5) == m.search(q, 5)


def test_load_mismatch(tmp_path: Path) -> None:
    m, _ = _filled(5)
    m.save(tmp_path / "map")
    with pytest.raises(MapMismatchError) as exc:
        PlaceMap.load(tmp_path / "map", expected_model_id="model-b", expected_dim=64)
    assert "model-a" in str(exc.value) and "model-b" in str(exc.value)
    with pytest.raises(MapMismatchError, match="dim 32"):
        PlaceMap.load(tmp_path / "map", expected_dim=64)


def test_load_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PlaceMap.load(tmp_path / "nope")
    m, _ = _filled(5)
    src = m.save(tmp_path / "good")

    def fresh(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst

    d = fresh("missing")
    (d / "places.sqlite").unlink()
    with pytest.raises(MapFormatError, match="places.sqlite"):
        PlaceMap.load(d)
    d = fresh("flipped")
    raw = bytearray((d / "index.faiss").read_bytes())
    raw[-5] ^= 0xFF
    (d / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(MapFormatError, match="index.faiss"):
        PlaceMap.load(d)
    d = fresh("nomanifest")
    (d / "manifest.yaml").unlink()
    with pytest.raises(MapFormatError, match="manifest"):
        PlaceMap.load(d)
    d = fresh("badyaml")
    (d / "manifest.yaml").write_text("count: [")
    with pytest.raises(MapFormatError, match="YAML"):
        PlaceMap.load(d)


def _rehash(d: Path, name: str) -> None:
    """Make a tampered file pass the checksum so the deeper consistency checks are exercised."""
    from lavpr_ros.core.manifest import sha256_file

    meta = yaml.safe_load((d / "manifest.yaml").read_text())
    meta["sha256"][name] = sha256_file(d / name)
    (d / "manifest.yaml").write_text(yaml.safe_dump(meta))


def test_load_inconsistent_contents(tmp_path: Path) -> None:
    m, _ = _filled(5)
    src = m.save(tmp_path / "good")
    d = tmp_path / "rows"
    shutil.copytree(src, d)
    con = sqlite3.connect(d / "places.sqlite")
    con.execute("DELETE FROM places WHERE id = 2")
    con.commit()
    con.close()
    _rehash(d, "places.sqlite")
    with pytest.raises(MapFormatError, match="places.sqlite"):
        PlaceMap.load(d)
    d = tmp_path / "desc"
    shutil.copytree(src, d)
    np.save(d / "descriptors.npy", np.zeros((4, DIM), np.float32))
    _rehash(d, "descriptors.npy")
    with pytest.raises(MapFormatError, match="descriptors.npy"):
        PlaceMap.load(d)
    d = tmp_path / "pickled"
    shutil.copytree(src, d)
    np.save(d / "descriptors.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _rehash(d, "descriptors.npy")
    with pytest.raises(MapFormatError, match="descriptors.npy"):
        PlaceMap.load(d)
    d = tmp_path / "faiss"
    shutil.copytree(src, d)
    (d / "index.faiss").write_bytes(b"garbage")
    _rehash(d, "index.faiss")
    with pytest.raises(MapFormatError, match="index.faiss"):
        PlaceMap.load(d)


def test_recovery_from_leftovers(tmp_path: Path) -> None:
    old, _ = _filled(5)
    new, _ = _filled(6)
    target = old.save(tmp_path / "map")
    # crash after moving the old map aside, before the new one was renamed in
    new.save(tmp_path / "staging")
    os.rename(target, tmp_path / "map.old")
    os.rename(tmp_path / "staging", tmp_path / "map.saving")
    assert len(PlaceMap.load(target)) in (5, 6)
    assert not (tmp_path / "map.old").exists() and not (tmp_path / "map.saving").exists()
    # crash while writing the temp dir: partial leftover is discarded
    (tmp_path / "map.saving").mkdir()
    (tmp_path / "map.saving" / "index.faiss").write_bytes(b"partial")
    n = len(PlaceMap.load(target))
    assert n in (5, 6) and not (tmp_path / "map.saving").exists()


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from lavpr_ros.core.place_map import PlaceMap

    path, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    maps = []
    for seed in (1, 2):  # two contents, saved alternately
        x = np.random.default_rng(seed).standard_normal((n + seed, dim)).astype(np.float32)
        m = PlaceMap(dim, "crash-model")
        m.add_batch(x, np.arange(n + seed, dtype=float), descriptions=[f"s{seed}"] * (n + seed))
        m.tags["seed"] = str(seed)
        maps.append(m)
    version = int(sys.argv[4])
    print("ready", flush=True)
    while True:
        version += 1
        m = maps[version % 2]
        m.tags["version"] = str(version)
        m.save(path)
        print("saved", version, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_save_leaves_old_or_new(tmp_path: Path) -> None:
    """Kill a process saving a large map at random instants; the map must always load whole."""
    n, dim = 40_000, 128  # ~20 MB descriptors + ~20 MB index per save
    expected = {}
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((n + seed, dim)).astype(np.float32)
        expected[seed] = x / np.linalg.norm(x, axis=1, keepdims=True)
    path = tmp_path / "map"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rnd = random.Random(1234)
    last_version, mid_save_kills = 0, 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(n), str(dim), str(last_version)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if last_version == 0:  # make sure one full save exists before the first kill
            assert proc.stdout.readline().split()[0] == "saved"
        time.sleep(rnd.uniform(0.05, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = [int(line.split()[1]) for line in proc.stdout.read().splitlines() if line]
        if done:
            last_version = max(last_version, *done)
        leftovers = [p.name for p in tmp_path.glob("map.*")]
        mid_save_kills += bool(leftovers)
        m = PlaceMap.load(path, expected_model_id="crash-model", expected_dim=dim)
        version = int(m.tags["version"])
        seed = int(m.tags["seed"])
        # old (last completed save) or new (the one in flight), never anything else
        assert version in (last_version, last_version + 1), (version, last_version, leftovers)
        assert seed == 1 + version % 2
        assert len(m) == n + seed
        np.testing.assert_allclose(m.descriptors, expected[seed], atol=1e-6)
        assert m.get(len(m) - 1).description == f"s{seed}"
        assert m.index.ntotal == len(m)
        last_version = version
    assert mid_save_kills >= 1  # at least one kill really landed inside a save
