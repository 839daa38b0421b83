"""Where the real datasets live: one setting, ``LAVPR_DATA``, for tests, demos and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LAVPR_DATA"


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is needed but the data location does not hold it."""


def _repo_root() -> Path | None:
    """The checkout root when running from a source tree (holds src/lavpr_ros), else None."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "src" / "lavpr_ros" / "package.xml").is_file():
            return parent
    return None


def default_data_root() -> Path | None:
    """``../shared/data`` next to the checkout, when it exists (the workplace layout)."""
    roots = [Path.cwd()]
    repo = _repo_root()
    if repo is not None:
        roots.insert(0, repo)
    for root in roots:
        candidate = (root / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


def cache_data_dir() -> Path:
    """Where ``lavpr data fetch`` installs: ``$LAVPR_CACHE/data`` or ~/.cache/lavpr/data."""
    base = os.environ.get("LAVPR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "lavpr"
    )
    return Path(base) / "data"


def data_root() -> Path:
    """``$LAVPR_DATA`` if set, else ``../shared/data`` if present, else the fetch cache."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(
                f"{ENV_VAR}={env} is not a directory. Point {ENV_VAR} at a folder holding the "
                "datasets (corridor/, nordland/) or fetch them with `lavpr data fetch NAME`."
            )
        return path.resolve()
    found = default_data_root()
    if found is None and cache_data_dir().is_dir() and any(cache_data_dir().iterdir()):
        found = cache_data_dir()
    if found is None:
        raise DataNotFoundError(
            f"No dataset location: set {ENV_VAR} to a folder holding corridor/ and nordland/, "
            "or fetch them with `lavpr data fetch corridor` / `lavpr data fetch nordland`."
        )
    return found


def dataset_dir(name: str) -> Path:
    """The folder of one dataset (e.g. ``corridor``) under the data location, checked to exist."""
    root = data_root()
    path = root / name
    if not path.is_dir():
        raise DataNotFoundError(
            f"Dataset '{name}' not found under {root} (from {ENV_VAR} or ../shared/data). "
            f"Set {ENV_VAR} or run `lavpr data fetch {name}`."
        )
    return path
