"""Image encoders behind one interface: RGB uint8 images in, L2-normalised float32 rows out.

Nodes, maps and benchmarks only see ``Encoder``; which backend runs (numpy patch normalisation,
onnxruntime with TensorRT/CUDA/CPU, or a raw TensorRT engine) is chosen by ``create_encoder``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from .manifest import (
    MANIFEST_NAME,
    ModelLoadError,
    ModelManifest,
    ModelNotFoundError,
    load_manifest,
    manifest_file,
    resolve_model_path,
)
from .onnx_model import OnnxModel

DEFAULT_BATCH = 32


@runtime_checkable
class Encoder(Protocol):
    """What every encoder offers; ``provider`` names where it actually runs (e.g. CPU)."""

    model_id: str
    dim: int
    provider: str

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 L2-normalised rows for N RGB uint8 HxWx3 images of any size."""
        ...


def l2_normalise_rows(x: np.ndarray, what: str = "encoder output") -> np.ndarray:
    """Row-wise L2 normalisation that refuses NaN/inf and all-zero rows instead of hiding them."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1)).tolist()
        raise RuntimeError(f"{what} has non-finite values in rows {bad[:10]}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms <= 0).any():
        bad = np.flatnonzero(norms[:, 0] <= 0).tolist()
        raise RuntimeError(f"{what} is all-zero in rows {bad[:10]}; cannot L2-normalise")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def _check_image(img: np.ndarray, i: int) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"image {i}: expected an RGB uint8 HxWx3 array, got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image {i}: empty image of shape {arr.shape}")
    return arr


def preprocess(images: Sequence[np.ndarray], manifest: ModelManifest) -> np.ndarray:
    """Images -> the float32 batch the graph expects (resize, colour order, mean/std, layout).

    ``mean``/``std`` are per channel in the model's colour order and apply to pixels in [0, 1].
    """
    if manifest.input_size is None:
        raise ValueError(f"manifest of '{manifest.model_id}' has no input_size")
    return preprocess_images(
        images,
        manifest.input_size,
        manifest.mean,
        manifest.std,
        manifest.color_order,
        manifest.input_layout,
        manifest.interpolation,
    )


def preprocess_images(
    images: Sequence[np.ndarray],
    input_size: tuple[int, int],
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    color_order: str = "RGB",
    layout: str = "NCHW",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """The one preprocessing recipe (runtime and training export/training alike): RGB uint8 ->
    Pillow resize to (h, w) (bilinear, or bicubic where the method was evaluated so) -> colour
    order -> (x/255 - mean) / std -> layout."""
    h, w = input_size
    resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    batch = np.empty((len(images), h, w, 3), dtype=np.float32)
    for i, img in enumerate(images):
        arr = _check_image(img, i)
        if arr.shape[:2] != (h, w):
            arr = np.asarray(Image.fromarray(arr).resize((w, h), resample=resample))
        batch[i] = arr
    if color_order == "BGR":
        batch = batch[..., ::-1]
    m = np.asarray(mean, dtype=np.float32) * 255.0
    scale = 1.0 / (np.asarray(std, dtype=np.float32) * 255.0)
    batch = (batch - m) * scale
    if layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)


def _as_manifest(manifest: str | Path | ModelManifest) -> ModelManifest:
    return manifest if isinstance(manifest, ModelManifest) else load_manifest(manifest)


class OnnxEncoder(OnnxModel):
    """An exported ONNX image model run by onnxruntime (TensorRT -> CUDA -> CPU by default)."""

    kind = "image"

    def __init__(
        self,
        manifest: str | Path | ModelManifest,
        providers: Sequence[str] | None = None,
        trt_cache_dir: str | Path | None = None,
        trt_fp16: bool = True,
        intra_op_threads: int = 0,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        m = _as_manifest(manifest)
        cache = Path(trt_cache_dir) if trt_cache_dir else m.model_path.parent / "trt_cache"
        trt = {
            "trt_fp16_enable": bool(trt_fp16),
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
        }
        super().__init__(
            m, providers, intra_op_threads, provider_options={"TensorrtExecutionProvider": trt}
        )
        self.batch_size = max(1, int(batch_size))
        self._check_graph(self.model_path)

    def _check_graph(self, path: Path) -> None:
        m = self.manifest
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if m.input_name not in inputs:
            raise ModelLoadError(
                f"{path}: graph has no input '{m.input_name}' (manifest input_name); "
                f"inputs: {', '.join(inputs)}"
            )
        if m.output_name not in outputs:
            raise ModelLoadError(
                f"{path}: graph has no output '{m.output_name}' (manifest output_name); "
                f"outputs: {', '.join(outputs)}"
            )
        shape = list(inputs[m.input_name].shape)
        if len(shape) != 4:
            raise ModelLoadError(f"{path}: input '{m.input_name}' has rank {len(shape)}, not 4")
        assert m.input_size is not None
        h, w = m.input_size
        expected = [3, h, w] if m.input_layout == "NCHW" else [h, w, 3]
        for got, want in zip(shape[1:], expected, strict=True):
            if isinstance(got, int) and got != want:
                raise ModelLoadError(
                    f"{path}: input shape {shape} does not fit manifest input_size {[h, w]} "
                    f"with layout {m.input_layout}"
                )
        # A fixed batch axis (exported without dynamic axes) means one image per run.
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        out_shape = outputs[m.output_name].shape
        static = [d for d in out_shape[1:] if isinstance(d, int)]
        if len(static) == len(out_shape) - 1 and static:
            got_dim = int(np.prod(static))
        else:  # dynamic output dims: ask the graph
            probe = np.zeros((1, *expected), dtype=np.float32)
            got_dim = int(np.prod(self._run(probe).shape[1:]))
        if got_dim != m.output_dim:
            raise ModelLoadError(
                f"{path}: model output '{m.output_name}' has dimension {got_dim} but the "
                f"manifest says output_dim {m.output_dim}"
            )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self.manifest.output_name], {self.manifest.input_name: batch})[0]
        return np.asarray(out).reshape(len(batch), -1)

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 rows, L2-normalised when the manifest says ``normalize: true``."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = self.fixed_batch or self.batch_size
        parts = []
        for start in range(0, len(images), step):
            parts.append(self._run(preprocess(images[start : start + step], self.manifest)))
        out = np.concatenate(parts).astype(np.float32, copy=False)
        if out.shape[1] != self.dim:
            raise RuntimeError(f"model '{self.model_id}' returned dim {out.shape[1]} != {self.dim}")
        if self.manifest.normalize:
            return l2_normalise_rows(out, f"output of '{self.model_id}'")
        if not np.isfinite(out).all():
            raise RuntimeError(f"output of '{self.model_id}' has non-finite values")
        return np.ascontiguousarray(out)

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.model_id!r}, dim={self.dim}, provider={self.provider!r})"


def _import_tensorrt() -> Any:
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise RuntimeError(
            "TensorRTEncoder needs the 'tensorrt' Python package (pip install tensorrt, or the "
            "JetPack/TensorRT install); alternatively use OnnxEncoder, which runs the ONNX model "
            "through onnxruntime's TensorRT execution provider."
        ) from exc


class _CudaRuntime:
    """Minimal device-memory/stream helper over cuda-python, falling back to pycuda."""

    def __init__(self) -> None:
        self._cudart: Any = None
        self._pycuda: Any = None
        for name in ("cuda.bindings.runtime", "cuda.cudart"):
            try:
                self._cudart = importlib.import_module(name)
                break
            except ImportError:
                continue
        if self._cudart is None:
            try:
                self._pycuda = importlib.import_module("pycuda.driver")
                importlib.import_module("pycuda.autoinit")
            except ImportError as exc:
                raise RuntimeError(
                    "TensorRTEncoder needs 'cuda-python' (pip install cuda-python) or 'pycuda' "
                    "for device memory"
                ) from exc
        if self._cudart is not None:
            self.stream = self._check(self._cudart.cudaStreamCreate())
        else:
            self.stream = self._pycuda.Stream()

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    @property
    def stream_handle(self) -> int:
        return int(self.stream) if self._cudart is not None else int(self.stream.handle)

    def malloc(self, nbytes: int) -> Any:
        if self._cudart is not None:
            return self._check(self._cudart.cudaMalloc(nbytes))
        return self._pycuda.mem_alloc(nbytes)

    def free(self, ptr: Any) -> None:
        if self._cudart is not None:
            self._check(self._cudart.cudaFree(ptr))
        else:
            ptr.free()

    def htod(self, dst: Any, src: np.ndarray) -> None:
        if self._cudart is not None:
            kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._check(
                self._cudart.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, self.stream)
            )
        else:
            self._pycuda.memcpy_htod_async(dst, src, self.stream)

    def dtoh(self, dst: np.ndarray, src: Any) -> None:
        if self._cudart is not None:
            kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._check(
                self._cudart.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, self.stream)
            )
        else:
            self._pycuda.memcpy_dtoh_async(dst, src, self.stream)

    def synchronize(self) -> None:
        if self._cudart is not None:
            self._check(self._cudart.cudaStreamSynchronize(self.stream))
        else:
            self.stream.synchronize()


class TensorRTEncoder:
    """A serialized TensorRT engine (TensorRT 10 API) with the preprocessing of its manifest.

    The manifest's sha256 describes the ONNX file the engine was built from, not the engine
    (engines are device-specific), so only the output dimension is checked here.
    """

    def __init__(self, engine_path: str | Path, manifest: str | Path | ModelManifest) -> None:
        trt = _import_tensorrt()
        self.manifest = _as_manifest(manifest)
        m = self.manifest
        path = Path(engine_path)
        if not path.is_file():
            raise FileNotFoundError(f"TensorRT engine not found: {path}")
        self.model_id = m.model_id
        self.dim = m.output_dim
        self.provider = "TensorRT"
        self._cuda = _CudaRuntime()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(
                f"cannot deserialize TensorRT engine {path} (built for another TensorRT version "
                "or GPU?); rebuild it on this machine"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_name = m.input_name if m.input_name in ins else ins[0]
        self.output_name = m.output_name if m.output_name in outs else outs[0]
        self._in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self._out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        in_shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if in_shape[0] == -1:  # dynamic batch: the optimisation profile's max
            self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        else:
            self.max_batch = int(in_shape[0])
        self._sample_shape = in_shape[1:]
        self.context.set_input_shape(self.input_name, (self.max_batch, *self._sample_shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        got_dim = int(np.prod(out_shape[1:]))
        if got_dim != m.output_dim:
            raise ModelLoadError(
                f"{path}: engine output '{self.output_name}' has dimension {got_dim} but the "
                f"manifest says output_dim {m.output_dim}"
            )
        n_in = self.max_batch * int(np.prod(self._sample_shape)) * self._in_dtype.itemsize
        n_out = self.max_batch * got_dim * self._out_dtype.itemsize
        self._d_in = self._cuda.malloc(n_in)
        self._d_out = self._cuda.malloc(n_out)
        self.context.set_tensor_address(self.input_name, int(self._d_in))
        self.context.set_tensor_address(self.output_name, int(self._d_out))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        host_in = np.ascontiguousarray(batch, dtype=self._in_dtype)
        self.context.set_input_shape(self.input_name, (n, *self._sample_shape))
        host_out = np.empty((n, self.dim), dtype=self._out_dtype)
        self._cuda.htod(self._d_in, host_in)
        if not self.context.execute_async_v3(self._cuda.stream_handle):
            raise RuntimeError(f"TensorRT execution failed for '{self.model_id}'")
        self._cuda.dtoh(host_out, self._d_out)
        self._cuda.synchronize()
        return host_out.astype(np.float32)

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 L2-normalised rows."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._run(preprocess(images[s : s + self.max_batch], self.manifest))
            for s in range(0, len(images), self.max_batch)
        ]
        out = np.concatenate(parts)
        if self.manifest.normalize:
            return l2_normalise_rows(out, f"output of engine '{self.model_id}'")
        return out

    def close(self) -> None:
        """Release device buffers (also done when the process ends)."""
        for attr in ("_d_in", "_d_out"):
            ptr = getattr(self, attr, None)
            if ptr is not None:
                self._cuda.free(ptr)
                setattr(self, attr, None)


SPEC_FORMS = (
    "'patchnorm' or 'patchnorm:WxH[:P]' (e.g. patchnorm:64x32:8)",
    "'fuse:W1*SPEC1+W2*SPEC2' (weighted fusion of encoders, see core/fused_encoder.py)",
    "a model manifest .yaml, or a directory holding manifest.yaml (ONNX via onnxruntime)",
    "an .onnx file with manifest.yaml next to it",
    "a TensorRT .engine/.plan file with manifest.yaml next to it",
)


def _parse_patchnorm(spec: str) -> dict[str, int]:
    parts = spec.split(":")
    try:
        out: dict[str, int] = {}
        if len(parts) >= 2:
            w, h = parts[1].lower().split("x")
            out.update(width=int(w), height=int(h))
        if len(parts) == 3:
            out["patch_size"] = int(parts[2])
        if len(parts) > 3:
            raise ValueError
        return out
    except ValueError:
        raise ValueError(
            f"bad patchnorm spec '{spec}'; expected 'patchnorm' or 'patchnorm:WxH[:P]'"
        ) from None


def create_encoder(spec: str, **kwargs: Any) -> Encoder:
    """Build an encoder from a short spec string (see ``SPEC_FORMS``); kwargs go to its class."""
    text = str(spec).strip()
    if text.lower().startswith("fuse:"):
        from .fused_encoder import FusedEncoder

        return FusedEncoder(text, lambda part: create_encoder(part, **kwargs))
    if text.lower() == "patchnorm" or text.lower().startswith("patchnorm:"):
        from .patchnorm import PatchNormEncoder  # lazy: keeps this module import light

        return PatchNormEncoder(**_parse_patchnorm(text), **kwargs)
    try:
        path = resolve_model_path(text)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{exc}. Encoder specs: " + "; ".join(SPEC_FORMS)) from None
    suffix = path.suffix.lower()
    if suffix in (".engine", ".plan"):
        if not path.is_file():
            raise FileNotFoundError(f"TensorRT engine not found: {path}")
        man = kwargs.pop("manifest", path.parent / MANIFEST_NAME)
        return TensorRTEncoder(path, man, **kwargs)
    if suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        man_path = path.parent / MANIFEST_NAME
        man = load_manifest(man_path)
        if man.model_path != path.resolve():
            raise ValueError(
                f"{man_path} describes {man.model_path}, not {path}; pass the manifest instead"
            )
        return OnnxEncoder(man, **kwargs)
    if suffix in (".yaml", ".yml") or path.is_dir():
        if not manifest_file(path).is_file():
            raise FileNotFoundError(f"model manifest not found: {manifest_file(path)}")
        return OnnxEncoder(path, **kwargs)
    raise ValueError(f"unknown encoder spec '{spec}'; accepted forms: " + "; ".join(SPEC_FORMS))
