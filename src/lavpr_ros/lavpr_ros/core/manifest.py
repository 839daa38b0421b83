"""Model manifest: the YAML file next to every exported model that says how to feed and trust it.

The runtime never guesses preprocessing from a file name: input size, colour order, mean/std and
layout come from here, and the sha256 ties the manifest to exactly one model file, so a map built
with one model can refuse descriptors from another.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
KINDS = ("image", "text", "sequence", "pose_text", "fusion")
COLOR_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
# How images are resized to input_size (Pillow filters; the published VPR models differ).
INTERPOLATIONS = ("bilinear", "bicubic")


class ModelError(Exception):
    """Root of every model problem (catch this to handle any of them); each subclass also
    derives from the builtin error callers caught before (ValueError, FileNotFoundError, ...)."""


class ManifestError(ModelError, ValueError):
    """A manifest that is missing, unreadable or fails validation (names the key and file)."""


class ModelChecksumError(ManifestError):
    """The model file's sha256 differs from the one recorded in its manifest."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model path that exists nowhere the runtime looks (names the places and what is there)."""


class ModelKindError(ModelError, ValueError):
    """A model of another kind than the wrapper runs (e.g. a text model given as the encoder)."""


class ModelLoadError(ModelError, RuntimeError):
    """onnxruntime/TensorRT cannot load the model, or its graph does not fit its manifest."""


@dataclass
class ModelManifest:
    """Parsed ``manifest.yaml``; ``directory`` is where relative paths resolve (not saved)."""

    model_id: str
    kind: str
    file: str
    sha256: str
    output_dim: int
    format_version: int = FORMAT_VERSION
    input_name: str = "images"
    output_name: str = "descriptors"
    input_size: tuple[int, int] | None = None
    color_order: str = "RGB"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_layout: str = "NCHW"
    interpolation: str = "bilinear"
    tokenizer: str | None = None
    max_length: int | None = None
    normalize: bool = True
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    directory: Path = field(default_factory=Path.cwd, compare=False, repr=False)

    @property
    def model_path(self) -> Path:
        """Absolute path of the model file (always inside the manifest's folder)."""
        return _inside(Path(self.directory), self.file, "file")

    @property
    def tokenizer_path(self) -> Path | None:
        """Absolute path of the tokenizer file for text models, else None."""
        if not self.tokenizer:
            return None
        return _inside(Path(self.directory), self.tokenizer, "tokenizer")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready mapping (no ``directory``, tuples as lists, None values dropped)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "directory" or value is None:
                continue
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def save(self, path: str | Path) -> Path:
        """Write the manifest (atomically) to ``path`` (a yaml file or a directory); returns it."""
        target = Path(path)
        if target.is_dir() or target.suffix not in (".yaml", ".yml"):
            target = target / MANIFEST_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.directory = target.parent.resolve()
        return target


def _err(path: Path, key: str, msg: str) -> ManifestError:
    return ManifestError(f"{path}: key '{key}': {msg}")


def _req_str(raw: dict[str, Any], key: str, path: Path) -> str:
    if key not in raw or raw[key] is None:
        raise _err(path, key, "is required")
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _err(path, key, f"must be a non-empty string, got {value!r}")
    return value


def _opt_str(raw: dict[str, Any], key: str, path: Path, default: str | None) -> str | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _err(path, key, f"must be a string, got {value!r}")
    return value


def _pos_int(value: Any, key: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _err(path, key, f"must be a positive integer, got {value!r}")
    return value


def _triple(raw: dict[str, Any], key: str, path: Path, default: tuple[float, ...]) -> Any:
    value = raw.get(key, list(default))
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _err(path, key, f"must be a list of 3 numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _err(path, key, f"must hold finite numbers, got {value!r}")
        out.append(float(v))
    if key == "std" and any(v <= 0 for v in out):
        raise _err(path, key, f"must be positive, got {value!r}")
    return tuple(out)


def _choice(raw: dict[str, Any], key: str, path: Path, choices: tuple[str, ...], default: str):
    value = raw.get(key, default)
    if value not in choices:
        raise _err(path, key, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def manifest_from_dict(raw: Any, path: str | Path, directory: str | Path) -> ModelManifest:
    """Validate a parsed mapping; ``path`` is only used in messages."""
    p = Path(path)
    if not isinstance(raw, dict):
        raise ManifestError(f"{p}: manifest must be a YAML mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(ModelManifest)} - {"directory"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _err(p, unknown[0], f"unknown key (known keys: {', '.join(sorted(known))})")
    version = raw.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise _err(p, "format_version", f"must be {FORMAT_VERSION}, got {version!r}")
    kind = _req_str(raw, "kind", p)
    if kind not in KINDS:
        raise _err(p, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    file = _req_str(raw, "file", p)
    if Path(file).is_absolute():
        raise _err(p, "file", f"must be relative to the manifest's directory, got {file!r}")
    sha = _req_str(raw, "sha256", p).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise _err(p, "sha256", f"must be 64 hex digits, got {raw['sha256']!r}")
    if "output_dim" not in raw:
        raise _err(p, "output_dim", "is required")
    size = raw.get("input_size")
    if size is not None:
        if not isinstance(size, list | tuple) or len(size) != 2:
            raise _err(p, "input_size", f"must be [height, width], got {size!r}")
        size = (_pos_int(size[0], "input_size", p), _pos_int(size[1], "input_size", p))
    elif kind == "image":
        raise _err(p, "input_size", "is required for image models ([height, width])")
    max_length = raw.get("max_length")
    if max_length is not None:
        max_length = _pos_int(max_length, "max_length", p)
    normalize = raw.get("normalize", True)
    if not isinstance(normalize, bool):
        raise _err(p, "normalize", f"must be true or false, got {normalize!r}")
    extra = raw.get("extra") or {}
    if not isinstance(extra, dict):
        raise _err(p, "extra", f"must be a mapping, got {extra!r}")
    return ModelManifest(
        format_version=FORMAT_VERSION,
        model_id=_req_str(raw, "model_id", p),
        kind=kind,
        file=file,
        sha256=sha,
        output_dim=_pos_int(raw["output_dim"], "output_dim", p),
        input_name=_opt_str(raw, "input_name", p, "images") or "images",
        output_name=_opt_str(raw, "output_name", p, "descriptors") or "descriptors",
        input_size=size,
        color_order=_choice(raw, "color_order", p, COLOR_ORDERS, "RGB"),
        mean=_triple(raw, "mean", p, (0.485, 0.456, 0.406)),
        std=_triple(raw, "std", p, (0.229, 0.224, 0.225)),
        input_layout=_choice(raw, "input_layout", p, LAYOUTS, "NCHW"),
        interpolation=_choice(raw, "interpolation", p, INTERPOLATIONS, "bilinear"),
        tokenizer=_opt_str(raw, "tokenizer", p, None),
        max_length=max_length,
        normalize=normalize,
        description=_opt_str(raw, "description", p, "") or "",
        source=_opt_str(raw, "source", p, "") or "",
        extra=dict(extra),
        directory=Path(directory).resolve(),
    )


def _inside(directory: Path, name: str, key: str) -> Path:
    """``directory/name`` resolved (symlinks too), refused unless it stays inside ``directory``:
    a manifest must not point the runtime at files elsewhere on the robot."""
    root = directory.resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        raise ManifestError(
            f"{root / MANIFEST_NAME}: key '{key}': {name!r} resolves to {target}, outside the "
            "manifest's folder; model files must live next to their manifest"
        )
    return target


def models_dirs() -> list[Path]:
    """Folders where relative model paths are also looked up, in order: $LAVPR_MODELS_DIR, the
    repository's models/ ($LAVPR_ROOT, or found from this package's location), and
    share/lavpr_ros/models of every prefix on $AMENT_PREFIX_PATH."""
    out: list[Path] = []
    if os.environ.get("LAVPR_MODELS_DIR"):
        out.append(Path(os.environ["LAVPR_MODELS_DIR"]))
    if os.environ.get("LAVPR_ROOT"):
        out.append(Path(os.environ["LAVPR_ROOT"]) / "models")
    here = Path(__file__).resolve()
    if len(here.parents) > 4 and (here.parents[4] / "models").is_dir():
        out.append(here.parents[4] / "models")  # src/lavpr_ros/lavpr_ros/core -> repository
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        out.append(Path(prefix) / "share" / "lavpr_ros" / "models")
    seen: list[Path] = []
    for d in out:
        d = d.resolve()
        if d.is_dir() and d not in seen:
            seen.append(d)
    return seen


def available_models(dirs: list[Path] | None = None) -> list[str]:
    """'<folder>/<name>' of every model folder (holding a manifest) in the model folders."""
    found = []
    for d in models_dirs() if dirs is None else dirs:
        found += [str(m.parent) for m in sorted(d.glob(f"*/{MANIFEST_NAME}"))]
    return found


def resolve_model_path(spec: str | Path) -> Path:
    """Find a model given as an absolute path, a path relative to the working directory, or a
    path relative to one of :func:`models_dirs` (``models/x`` and ``x`` both work there)."""
    p = Path(spec).expanduser()
    if p.exists():
        return p.resolve()
    tried = [p.absolute()]
    if not p.is_absolute():
        parts = p.parts[1:] if p.parts and p.parts[0] == "models" else p.parts
        for d in models_dirs():
            for cand in {d / p, d.joinpath(*parts)} if parts else {d / p}:
                if cand.exists():
                    return cand.resolve()
                tried.append(cand)
    have = available_models()
    raise ModelNotFoundError(
        f"model not found: {p.absolute()} (cwd {Path.cwd()}); also looked in "
        + ", ".join(str(t) for t in tried[1:] or ["no model folders"])
        + ". Models available: "
        + (", ".join(have) if have else "none (run `make models`)")
    )


def manifest_file(path: str | Path) -> Path:
    """The manifest file for ``path`` (the yaml itself, or ``<dir>/manifest.yaml``)."""
    p = Path(path)
    return p / MANIFEST_NAME if p.is_dir() else p


def load_manifest(path: str | Path) -> ModelManifest:
    """Read and validate a manifest; ``path`` is the yaml file or the directory holding it
    (relative paths are also looked up in :func:`models_dirs`)."""
    p = manifest_file(path)
    if not p.exists():
        p = manifest_file(resolve_model_path(path))
    if not p.is_file():
        raise ModelNotFoundError(f"model manifest not found: {p.absolute()} (cwd {Path.cwd()})")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: not valid YAML: {exc}") from exc
    return manifest_from_dict(raw, p, p.parent)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (models can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_checksum(manifest: ModelManifest) -> Path:
    """Check the model file against the manifest's sha256; returns its path."""
    path = manifest.model_path
    if not path.is_file():
        raise ModelNotFoundError(
            f"model file for '{manifest.model_id}' not found: {path} (from manifest key 'file')"
        )
    actual = sha256_file(path)
    if actual != manifest.sha256.lower():
        raise ModelChecksumError(
            f"model file {path} does not match its manifest ('{manifest.model_id}'): "
            f"expected sha256 {manifest.sha256}, actual {actual}. Re-export the model or update "
            "the manifest."
        )
    return path
