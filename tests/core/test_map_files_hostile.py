"""Issue #15, items 1-5: saving and loading maps never destroys foreign data, and any legal path
round-trips. Each test reproduced a failure of the earlier code (named in its docstring)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from lavpr_ros.core.place_map import MapFormatError, MapTargetError, PlaceMap

DIM = 16


def _map(n: int = 20, index_type: str = "flat", **kw) -> PlaceMap:
    x = np.random.default_rng(1).standard_normal((n, DIM)).astype(np.float32)
    m = PlaceMap(DIM, "model-a", index_type, **kw)
    for i, d in enumerate(x):
        m.add(d, stamp=float(i), pose=[i, 0, 0, 0, 0, 0, 1])
    return m


def _edit_manifest(target: Path, edit) -> None:
    """Rewrite a saved map's manifest through ``edit(meta)`` (the data files stay as saved)."""
    man = target / "manifest.yaml"
    meta = yaml.safe_load(man.read_text())
    edit(meta)
    man.write_text(yaml.safe_dump(meta))


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(root.rglob("*"))
    }


def test_item1_save_refuses_foreign_directory(tmp_path: Path) -> None:
    """Before: save_map onto a non-map directory deleted its contents and reported success."""
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"precious")
    before = _tree(tmp_path)
    with pytest.raises(MapTargetError, match="not empty and is not a lavpr map"):
        _map().save(target)
    assert _tree(tmp_path) == before


def test_item1_save_refuses_regular_file(tmp_path: Path) -> None:
    """Before: saving onto a file renamed it to *.old and left a map that could not load."""
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(MapTargetError, match="is a file"):
        _map().save(target)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_item1_save_into_empty_dir_and_over_a_map(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    _map(5).save(target)
    assert len(PlaceMap.load(target)) == 5
    _map(7).save(target)  # overwriting a lavpr map is what save is for
    assert len(PlaceMap.load(target)) == 7


def test_item2_failed_load_changes_nothing(tmp_path: Path) -> None:
    """Before: load_map of a non-map directory deleted sibling <name>.old/ and <name>.saving/."""
    target = tmp_path / "data"
    target.mkdir()
    (target / "readme.txt").write_text("not a map")
    for sib in ("data.old", "data.saving"):
        (tmp_path / sib).mkdir()
        (tmp_path / sib / "thesis.tex").write_text("years of work")
    before = _tree(tmp_path)
    with pytest.raises(MapFormatError, match="not a place map"):
        PlaceMap.load(target)
    assert _tree(tmp_path) == before


def test_item2_corrupt_map_load_keeps_leftovers(tmp_path: Path) -> None:
    """A load that fails validation must not 'repair' anything either."""
    target = tmp_path / "m"
    _map().save(target)
    _map(3).save(tmp_path / "other")
    shutil.copytree(tmp_path / "other", tmp_path / "m.old")  # a crash leftover of ours
    (target / "descriptors.npy").write_bytes(b"garbage")
    before = _tree(tmp_path)
    with pytest.raises(MapFormatError):
        PlaceMap.load(target)
    assert _tree(tmp_path) == before


def test_item2_recovery_only_touches_own_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "m"
    _map(4).save(target)
    (tmp_path / "m.saving").mkdir()
    (tmp_path / "m.saving" / "index.faiss").write_bytes(b"partial")  # ours: removed
    (tmp_path / "m.old").mkdir()
    (tmp_path / "m.old" / "mine.txt").write_text("foreign")  # not ours: kept
    assert len(PlaceMap.load(target)) == 4
    assert not (tmp_path / "m.saving").exists()
    assert (tmp_path / "m.old" / "mine.txt").read_text() == "foreign"


@pytest.mark.parametrize("name", ["m#1", "what?", "x%41y", "sp ace", "ünï", "a;b&c", "100%"])
def test_item3_any_legal_path_round_trips(tmp_path: Path, name: str) -> None:
    """Before: '#', '?' or '%41' in the path saved but did not load (unescaped SQLite URI), and
    loading 'm#1' created a stray file."""
    target = tmp_path / name
    m = _map(6)
    m.set_description(2, "door")
    m.save(target)
    before = sorted(p.name for p in tmp_path.iterdir())
    loaded = PlaceMap.load(target)
    assert len(loaded) == 6 and loaded.get(2).description == "door"
    np.testing.assert_allclose(loaded.get(3).pose, [3, 0, 0, 0, 0, 0, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray files


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("unshare"), reason="needs unshare")
def test_item4_read_only_location_with_leftovers(tmp_path: Path) -> None:
    """Before: leftovers on a read-only filesystem made load fail (only PermissionError was
    caught, not EROFS). Now the complete copy is read as it is and the map says so."""
    import subprocess
    import sys

    target = tmp_path / "m"
    _map(9).save(target)
    os.rename(target, tmp_path / "m.old")  # crash between the two renames: only .old is left
    (tmp_path / "m.saving").mkdir()
    (tmp_path / "m.saving" / "index.faiss").write_bytes(b"partial")
    before = _tree(tmp_path)
    code = (
        "import sys; from lavpr_ros.core.place_map import PlaceMap\n"
        f"m = PlaceMap.load({str(target)!r})\n"
        "print(len(m)); print(m.load_notes)\n"
    )
    # A read-only bind mount of the folder (a real EROFS), in a private mount namespace.
    script = (
        f"mount --bind {tmp_path} {tmp_path} && mount -o remount,bind,ro {tmp_path} && "
        f"{sys.executable} -c {_sh(code)}"
    )
    res = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if res.returncode != 0 and "mount" in res.stderr and "permission" in res.stderr.lower():
        pytest.skip(f"cannot make a read-only mount here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "9"
    assert "not repaired" in lines[1] and "Read-only file system" in lines[1]
    assert _tree(tmp_path) == before


def _sh(code: str) -> str:
    import shlex

    return shlex.quote(code)


def test_item5_manifest_index_type_must_match_file(tmp_path: Path) -> None:
    """Before: a manifest stating index_type hnsw over a flat index loaded."""
    target = tmp_path / "m"
    _map().save(target)
    _edit_manifest(target, lambda meta: meta.update(index_type="hnsw"))
    with pytest.raises(MapFormatError, match="index_type 'hnsw' but the file holds"):
        PlaceMap.load(target)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hnsw_m": -5}, "hnsw_m must be"),
        ({"ivf_nprobe": 0}, "ivf_nprobe must be"),
        ({"hnsw_ef_search": "lots"}, "hnsw_ef_search must be"),
    ],
)
def test_item5_nonsense_index_parameters_refused(tmp_path: Path, params, match) -> None:
    target = tmp_path / "m"
    _map(index_type="hnsw").save(target)
    _edit_manifest(target, lambda meta: meta["index_params"].update(params))
    with pytest.raises(MapFormatError, match=match):
        PlaceMap.load(target)


def test_item5_hnsw_parameters_checked_against_graph(tmp_path: Path) -> None:
    target = tmp_path / "m"
    _map(index_type="hnsw", hnsw_m=16).save(target)
    _edit_manifest(target, lambda meta: meta["index_params"].update(hnsw_m=32))
    with pytest.raises(MapFormatError, match="does not match the stored HNSW graph"):
        PlaceMap.load(target)


def test_item5_pcapq_projection_checked_against_file(tmp_path: Path) -> None:
    """A PCA-PQ map (trained once 624 places exist, later places added in batches) round-trips;
    a manifest whose pca_dim or index_type disagrees with the stored index is refused."""
    m = _map(700, "pcapq", pca_dim=8)
    assert m.index.is_trained and m.index.ntotal == 624  # 76 places wait for the next batch
    query = m.descriptor_rows(np.array([650]))[0]
    assert m.search(query, 1)[0][0] == 650  # a pending place is searched exactly
    target = tmp_path / "m"
    m.save(target)
    loaded = PlaceMap.load(target)
    assert loaded.index_type == "pcapq" and loaded.index.ntotal == 700
    assert loaded.search(query, 1)[0][0] == 650
    _edit_manifest(target, lambda meta: meta["index_params"].update(pca_dim=4))
    with pytest.raises(MapFormatError, match="projection is not 16 -> 4"):
        PlaceMap.load(target)
    flat = tmp_path / "flat"
    _map().save(flat)
    _edit_manifest(flat, lambda meta: meta.update(index_type="pcapq"))
    with pytest.raises(MapFormatError, match="index_type 'pcapq' but the file holds"):
        PlaceMap.load(flat)
