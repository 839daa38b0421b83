"""One base for every exported ONNX model the runtime runs (image, text, sequence, fusion,
pose-text): manifest loading, the kind check, the checksum, execution providers and session
set-up live here once, with one exception hierarchy (``core.manifest.ModelError``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .manifest import (
    ModelKindError,
    ModelLoadError,
    ModelManifest,
    load_manifest,
    verify_checksum,
)
from .providers import PROVIDER_ORDER, resolve_providers


def as_manifest(manifest: str | Path | ModelManifest) -> ModelManifest:
    return manifest if isinstance(manifest, ModelManifest) else load_manifest(manifest)


def open_session(
    path: Path,
    model_id: str,
    providers: Sequence[str] | None = None,
    default_providers: Sequence[str] | None = None,
    intra_op_threads: int = 0,
    provider_options: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """An onnxruntime session on the preferred available providers; ModelLoadError otherwise."""
    import onnxruntime as ort

    names = resolve_providers(
        providers, ort.get_available_providers(), default=default_providers or PROVIDER_ORDER
    )
    opts = provider_options or {}
    provider_args = [(n, opts[n]) if n in opts else n for n in names]
    for n in names:  # an engine cache folder must exist before TensorRT writes into it
        cache = opts.get(n, {}).get("trt_engine_cache_path")
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(0, int(intra_op_threads))
    so.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning after a run: on a small robot computer the
    # encoder shares its cores with place_map (search, sequence matching, features), and spinning
    # threads take CPU from them for milliseconds after every frame.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), so, providers=provider_args)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ModelLoadError(
            f"cannot load ONNX model {path} ('{model_id}'): {type(exc).__name__}: {exc}"
        ) from exc


class OnnxModel:
    """A manifest-described ONNX model: ``manifest``, ``model_id``, ``dim``, ``session``,
    ``provider``. Subclasses add their inputs/outputs checks and their ``encode``."""

    kind: str = ""
    default_providers: Sequence[str] | None = None
    kind_error: type[Exception] = ModelKindError  # a ModelKindError subclass of the wrapper's

    def __init__(
        self,
        manifest: str | Path | ModelManifest,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        provider_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        m = as_manifest(manifest)
        if m.kind != self.kind:
            raise self.kind_error(
                f"model '{m.model_id}' has kind '{m.kind}'; {type(self).__name__} runs "
                f"'{self.kind}' models"
            )
        self.manifest = m
        self.model_path = verify_checksum(m)  # refuse a file the manifest does not describe
        self.model_id = m.model_id
        self.dim = int(m.output_dim)
        self.session = open_session(
            self.model_path,
            m.model_id,
            providers,
            self.default_providers,
            intra_op_threads,
            provider_options,
        )
        self.provider: str = self.session.get_providers()[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, dim={self.dim}, {self.provider})"
