"""Write ``models/<model_id>/manifest.yaml`` with plain yaml (same keys the runtime reads)."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
KEY_ORDER = (
    "format_version",
    "model_id",
    "kind",
    "file",
    "sha256",
    "output_dim",
    "input_name",
    "output_name",
    "input_size",
    "color_order",
    "mean",
    "std",
    "input_layout",
    "interpolation",
    "tokenizer",
    "max_length",
    "normalize",
    "description",
    "source",
    "extra",
)


from lavpr_ros.core.manifest import sha256_file  # noqa: E402  (the runtime's checksum)


def _plain(value: Any) -> Any:
    """Tuples/numpy scalars -> plain yaml types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def write_manifest(directory: str | Path, fields: dict[str, Any]) -> Path:
    """Write the manifest for the model file ``fields['file']`` in ``directory``; fills
    ``format_version`` and ``sha256``; drops None values; returns the manifest path."""
    directory = Path(directory)
    data = dict(fields)
    data["format_version"] = FORMAT_VERSION
    data["sha256"] = sha256_file(directory / data["file"])
    unknown = set(data) - set(KEY_ORDER)
    if unknown:
        raise ValueError(f"unknown manifest keys: {sorted(unknown)}")
    ordered = {k: _plain(data[k]) for k in KEY_ORDER if data.get(k) is not None}
    path = directory / MANIFEST_NAME
    path.write_text(yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest as a plain dict, validated by the runtime's reader (core.manifest)."""
    from lavpr_ros.core.manifest import load_manifest

    return load_manifest(path).to_dict()


@contextmanager
def staging_dir(out_root: str | Path, model_id: str, force: bool = False):
    """Yield a temporary folder next to ``out_root/model_id``; on success it replaces that
    folder atomically-ish (rename), so a crashed export never leaves a half-written model."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / model_id
    if final.exists() and not force:
        raise FileExistsError(f"{final} exists; pass --force to overwrite")
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_id}-", dir=out_root))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the runtime may run as another user
        if final.exists():
            old = out_root / f".{model_id}.old-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
