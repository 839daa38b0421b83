"""Download the public Corridor and Nordland copies into a cache, verified by content checksum.

The expected content of each dataset is pinned as a *tree hash*: sha256 over the sorted lines
``<relative path>\\0<sha256 of file>\\n`` of every file. That pins the data itself rather than one
way of packing it, so any mirror's archive (tar/zip, any compression) verifies the same way.
Archives come from a mirror base URL (``--mirror`` or ``LAVPR_DATA_MIRROR``) holding
``<name>.tar.gz``; ``lavpr data pack`` makes such an archive from a local copy, for labs that host
their own mirror. Nothing is ever written into the repository.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lavpr_ros.core.data_location import cache_data_dir

MIRROR_ENV = "LAVPR_DATA_MIRROR"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    content_sha256: str
    num_files: int
    archive: str
    citation: str


DATASETS: dict[str, DatasetSpec] = {
    "corridor": DatasetSpec(
        name="corridor",
        content_sha256="0ac787fb6c86e780522d1273e8119608590c4aadeb71665999c67cb30728eae0",
        num_files=224,
        archive="corridor.tar.gz",
        citation='M. Milford, "Vision-based place recognition: how low can you go?", IJRR 2013 '
        "(VPR-Bench packaging, MIT licence)",
    ),
    "nordland": DatasetSpec(
        name="nordland",
        content_sha256="7d2a66c6ab86476afed1d885050ee4b57a234be4a60fdc95f9735006f0a25d37",
        num_files=7152,
        archive="nordland.tar.gz",
        citation="N. Suenderhauf et al., Nordland summer/winter thumbnails (NRK footage), 2013",
    ),
}


class FetchError(RuntimeError):
    """A download or its verification failed; nothing was installed into the cache."""


def cache_dir() -> Path:
    return cache_data_dir()


def tree_hash(root: Path) -> tuple[str, int]:
    """(sha256 over sorted relative paths and file hashes, number of files) of a folder."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append(f"{path.relative_to(root).as_posix()}\0{digest}\n")
    return hashlib.sha256("".join(entries).encode()).hexdigest(), len(entries)


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise FetchError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def _download(url: str, timeout: float) -> bytes:
    import httpx

    buf = io.BytesIO()
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise FetchError(f"GET {url} answered HTTP {resp.status_code}")
            total = int(resp.headers.get("content-length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]) as bar:
                for chunk in resp.iter_bytes():
                    buf.write(chunk)
                    bar.update(len(chunk))
    except httpx.HTTPError as exc:
        raise FetchError(f"download of {url} failed: {exc}") from exc
    return buf.getvalue()


def _extract(payload: bytes, dest: Path) -> None:
    """Extract a tar(.gz/.xz/.bz2) or zip archive safely (no paths outside dest, no links)."""
    if zipfile.is_zipfile(io.BytesIO(payload)):
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            for info in zf.infolist():
                target = (dest / info.filename).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise FetchError(f"archive member escapes the target: {info.filename}")
            zf.extractall(dest)
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tf:
            tf.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise FetchError(f"not a readable tar or zip archive: {exc}") from exc


def _dataset_root(extracted: Path, name: str) -> Path:
    """The archive may hold the files directly or under one top folder (usually ``name/``)."""
    children = [p for p in extracted.iterdir()]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return extracted


def fetch(
    name: str,
    mirror: str | None = None,
    url: str | None = None,
    dest: Path | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and install dataset ``name`` into the cache; return its folder."""
    spec = _spec(name)
    dest_root = Path(dest) if dest is not None else cache_dir()
    target = dest_root / name
    if target.is_dir() and not force:
        digest, _ = tree_hash(target)
        if digest == spec.content_sha256:
            return target
    if url is None:
        mirror = mirror or os.environ.get(MIRROR_ENV)
        if not mirror:
            raise FetchError(
                f"no download location for '{name}': pass --mirror URL (a folder holding "
                f"{spec.archive}) or --url, or set {MIRROR_ENV}"
            )
        url = mirror.rstrip("/") + "/" + spec.archive
    payload = _download(url, timeout)
    dest_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_root, prefix=f".{name}-") as tmp:
        tmp_path = Path(tmp)
        _extract(payload, tmp_path)
        root = _dataset_root(tmp_path, name)
        digest, count = tree_hash(root)
        if digest != spec.content_sha256 or count != spec.num_files:
            raise FetchError(
                f"checksum mismatch for '{name}' from {url}: content sha256 {digest} over {count} "
                f"files, expected {spec.content_sha256} over {spec.num_files}; nothing installed"
            )
        staged = dest_root / f".{name}.new"
        if staged.exists():
            shutil.rmtree(staged)
        root.rename(staged)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def pack(name: str, source: Path, out_dir: Path) -> Path:
    """Write ``<name>.tar.gz`` of a verified local copy, for hosting a mirror."""
    spec = _spec(name)
    digest, count = tree_hash(source)
    if digest != spec.content_sha256:
        raise FetchError(
            f"{source} does not hold the expected '{name}' content (sha256 {digest} over {count} "
            f"files, expected {spec.content_sha256})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / spec.archive
    with tarfile.open(out, "w:gz") as tf:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            tf.add(path, arcname=f"{name}/{path.relative_to(source).as_posix()}")
    return out
