"""Data location setting and `lavpr data fetch` against a local HTTP server (never the internet)."""

from __future__ import annotations

import functools
import http.server
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lavpr_ros.cli.main import main
from lavpr_ros.core import data_location
from lavpr_ros.data_fetch import FetchError, fetch, pack, tree_hash


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_data_root_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAVPR_DATA", str(tmp_path))
    assert data_location.data_root() == tmp_path.resolve()
    with pytest.raises(data_location.DataNotFoundError, match="LAVPR_DATA"):
        data_location.dataset_dir("corridor")
    monkeypatch.setenv("LAVPR_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(data_location.DataNotFoundError, match="LAVPR_DATA"):
        data_location.data_root()


def test_fetch_verifies_and_installs(
    data_root: Path, http_dir: tuple[str, Path], tmp_path: Path
) -> None:
    url, www = http_dir
    archive = pack("corridor", data_root / "corridor", www)
    assert archive.name == "corridor.tar.gz"
    dest = tmp_path / "cache"
    path = fetch("corridor", mirror=url, dest=dest)
    assert path == dest / "corridor"
    assert tree_hash(path) == tree_hash(data_root / "corridor")
    # A second fetch with a verified copy present downloads nothing: stop the server's file.
    archive.unlink()
    assert fetch("corridor", mirror=url, dest=dest) == path
    # The CLI reports the same.
    assert main(["data", "fetch", "corridor", "--mirror", url, "--dest", str(dest)]) == 0


def test_fetch_refuses_wrong_content(
    data_root: Path, http_dir: tuple[str, Path], tmp_path: Path
) -> None:
    url, www = http_dir
    # Same layout, one byte changed: the checksum must catch it and nothing is installed.
    src = tmp_path / "tampered"
    src.mkdir()
    for p in sorted((data_root / "corridor").rglob("*")):
        if p.is_file():
            out = src / p.relative_to(data_root / "corridor")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(p.read_bytes())
    victim = src / "query" / "0000005.jpg"
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with tarfile.open(www / "corridor.tar.gz", "w:gz") as tf:
        tf.add(src, arcname="corridor")
    dest = tmp_path / "cache"
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch("corridor", mirror=url, dest=dest)
    assert not (dest / "corridor").exists()


def test_fetch_errors_are_clear(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, www = http_dir
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch("nordland", mirror=url, dest=tmp_path)
    (www / "nordland.tar.gz").write_bytes(b"this is not an archive")
    with pytest.raises(FetchError, match="archive"):
        fetch("nordland", mirror=url, dest=tmp_path)
    with pytest.raises(FetchError, match="LAVPR_DATA_MIRROR"):
        fetch("nordland", mirror=None, dest=tmp_path)
    with pytest.raises(FetchError, match="unknown dataset"):
        fetch("kitti", mirror=url, dest=tmp_path)
    # Connection refused (nothing listens on port 9 of localhost).
    with pytest.raises(FetchError, match="failed"):
        fetch("nordland", url="http://127.0.0.1:9/nordland.tar.gz", dest=tmp_path, timeout=2)
