"""ROS image payloads to numpy RGB arrays, without cv_bridge (which drags in OpenCV and rclpy).

Every function returns an HxWx3 ``uint8`` C-contiguous array in RGB order, the one layout the
encoders accept, so nodes and offline tools share a single conversion path.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")

# Bytes per pixel of each supported encoding (all are 8-bit per channel).
_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}

# Far above any camera; guards against garbage headers allocating gigabytes.
MAX_SIDE = 32768
MAX_PIXELS = 1 << 28
# Default pixel limit of the nodes (parameter max_image_pixels): above an 8K camera (33 MP)
# but far below Pillow's decompression-bomb limit (~179 MP), so a small PNG that declares
# 13000x13000 is refused from its header, before a gigabyte is allocated.
DEFAULT_MAX_PIXELS = 40_000_000


_DECODE_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
)


class ImageFormatError(ValueError):
    """An image payload that cannot be turned into an RGB array (bad header, bytes or encoding)."""


def _check_size(height: int, width: int, max_pixels: int | None = None) -> None:
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image has empty size {width}x{height} (width x height)")
    if max_pixels is not None and max_pixels > 0 and height * width > max_pixels:
        raise ImageFormatError(
            f"image of {width}x{height} = {height * width} pixels is above the limit of "
            f"{max_pixels} pixels (parameter max_image_pixels): refused before decoding"
        )
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ImageFormatError(
            f"image size {width}x{height} is implausible (limit {MAX_SIDE} per side, "
            f"{MAX_PIXELS} pixels); the message header is probably corrupt"
        )


def image_from_raw(
    data: bytes | bytearray | memoryview | np.ndarray,
    height: int,
    width: int,
    encoding: str,
    step: int,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` payload to HxWx3 RGB uint8, honouring row padding."""
    enc = encoding.lower()
    if enc not in _CHANNELS:
        raise ImageFormatError(
            f"unsupported image encoding '{encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    height, width, step = int(height), int(width), int(step)
    _check_size(height, width, max_pixels)
    channels = _CHANNELS[enc]
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageFormatError(
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{channels} = {row_bytes}"
        )
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    # The last row need not carry its padding, so only step*(h-1) + row_bytes is strictly needed;
    # ROS publishers always send step*height, and asking for that catches truncated messages.
    needed = step * height
    if buf.size < needed:
        raise ImageFormatError(
            f"image data has {buf.size} bytes but step*height = {step}*{height} = {needed} "
            "are required"
        )
    view = np.lib.stride_tricks.as_strided(
        buf, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    if enc == "rgb8":
        out = view
    elif enc == "bgr8":
        out = view[:, :, ::-1]
    elif enc == "rgba8":
        out = view[:, :, :3]
    elif enc == "bgra8":
        out = view[:, :, 2::-1]
    else:  # mono8
        out = np.broadcast_to(view, (height, width, 3))
    # Always copy: the payload buffer may be reused by the middleware after the callback.
    return np.array(out, dtype=np.uint8, order="C", copy=True)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def image_from_compressed(data: bytes, fmt: str = "", max_pixels: int | None = None) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG/PNG) payload to HxWx3 RGB uint8.

    ``fmt`` is the message's format string; it is only used in error messages because the
    decoder sniffs the actual container from the bytes.
    """
    raw = bytes(data)
    label = f" (format '{fmt}')" if fmt else ""
    if not raw:
        raise ImageFormatError(f"compressed image{label} is empty")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            w, h = img.size
            _check_size(h, w, max_pixels)  # before decoding: a header cannot allocate gigabytes
            img.load()
            return _pil_to_rgb(img)
    except ImageFormatError:
        raise
    except _DECODE_ERRORS as exc:
        raise ImageFormatError(
            f"cannot decode compressed image{label} of {len(raw)} bytes: {exc}"
        ) from exc


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file (any Pillow format) as HxWx3 RGB uint8."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        with Image.open(p) as img:
            img.load()
            return _pil_to_rgb(img)
    except _DECODE_ERRORS as exc:
        raise ImageFormatError(f"cannot read image {p}: {exc}") from exc
