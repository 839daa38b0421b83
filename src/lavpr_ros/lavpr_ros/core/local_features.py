"""Local features of a keyframe (OpenCV SIFT by default, ORB as the fast option), bounded in size.

Each keyframe keeps at most ``max_features`` keypoints: pixel coordinates (float32, in the
original image), descriptors as uint8 (SIFT: RootSIFT scaled to 0..255, i.e. 128 bytes per
keypoint; ORB: its 32 binary bytes) and, when an aligned depth image was available, the depth of
each keypoint in metres (NaN where unknown). Small frames are upscaled before detection (SIFT
finds almost nothing on 160x120) and coordinates are mapped back, so geometry always works in the
camera's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FEATURE_TYPES = ("sift", "orb")


class FeatureError(ValueError):
    """An image or depth map that local features cannot be computed from (says why)."""


@dataclass
class FeatureConfig:
    """What is extracted per keyframe (place_map parameters ``verification.*``)."""

    feature_type: str = "sift"
    max_features: int = 500
    # Frames whose shorter side is below this are upscaled to it before detection [px].
    min_detect_side: int = 240
    # Frames whose longer side is above this are detected on a downscaled copy [px]: SIFT at
    # 640x480 costs ~200 ms on this 2-core machine, at 320x240 ~30 ms (0 = never downscale).
    max_side: int = 320
    # Frames whose shorter side is below this are too small for geometry at all [px]
    # (Nordland's 64x32 thumbnails): verification falls back to the sequence decision.
    min_image_side: int = 96

    def __post_init__(self) -> None:
        if self.feature_type not in FEATURE_TYPES:
            raise ValueError(
                f"feature_type must be one of {FEATURE_TYPES}, got {self.feature_type!r}"
            )
        if not 8 <= int(self.max_features) <= 10_000:
            raise ValueError(f"max_features must be in 8..10000, got {self.max_features}")
        if int(self.min_image_side) < 8 or int(self.min_detect_side) < int(self.min_image_side):
            raise ValueError("need 8 <= min_image_side <= min_detect_side")


@dataclass
class Features:
    """Keypoints of one image; ``size`` = (width, height) of the image they were found in."""

    kind: str
    xy: np.ndarray  # (N, 2) float32 pixel coordinates
    desc: np.ndarray  # (N, D) uint8
    size: tuple[int, int]
    depth: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (N,) m or NaN

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def has_depth(self) -> bool:
        return len(self.depth) == len(self.xy) and bool(np.isfinite(self.depth).any())


def _cv2():
    import cv2  # lazy: only verification needs OpenCV

    return cv2


def _grey(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise FeatureError(f"expected an RGB uint8 HxWx3 image, got {arr.shape} {arr.dtype}")
    # ITU-R 601 luma, as OpenCV's RGB2GRAY
    g = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    return np.clip(g + 0.5, 0, 255).astype(np.uint8)


def too_small(image_shape: tuple[int, ...], config: FeatureConfig) -> bool:
    return min(int(image_shape[0]), int(image_shape[1])) < config.min_image_side


def extract(
    image: np.ndarray, config: FeatureConfig, depth_m: np.ndarray | None = None
) -> Features:
    """Keypoints + descriptors of an RGB image (and the depth at each keypoint when ``depth_m``,
    an HxW float32 depth in metres aligned with the image, is given). A textureless or black
    image gives zero keypoints (not an error): the caller reports it."""
    cv2 = _cv2()
    grey = _grey(image)
    h, w = grey.shape
    if too_small(grey.shape, config):
        raise FeatureError(
            f"image {w}x{h} is too small for local features (min_image_side "
            f"{config.min_image_side} px)"
        )
    scale = max(1.0, config.min_detect_side / min(h, w))
    if config.max_side and max(h, w) * scale > config.max_side:
        scale = max(config.max_side / max(h, w), config.min_detect_side / max(h, w))
    if scale > 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    elif scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if config.feature_type == "sift":
        det = cv2.SIFT_create(nfeatures=int(config.max_features), contrastThreshold=0.02)
    else:
        det = cv2.ORB_create(nfeatures=int(config.max_features), fastThreshold=10)
    kps, desc = det.detectAndCompute(grey, None)
    n_dim = 128 if config.feature_type == "sift" else 32
    if desc is None or not kps:
        return Features(
            config.feature_type,
            np.zeros((0, 2), np.float32),
            np.zeros((0, n_dim), np.uint8),
            (w, h),
        )
    order = np.argsort([-k.response for k in kps], kind="stable")[: config.max_features]
    xy = np.array([kps[i].pt for i in order], dtype=np.float32) / scale
    desc = desc[order]
    if config.feature_type == "sift":
        desc = _root_sift_u8(desc)
    out = Features(config.feature_type, xy, np.ascontiguousarray(desc, np.uint8), (w, h))
    if depth_m is not None:
        out.depth = depth_at(depth_m, xy, (w, h))
    return out


def _root_sift_u8(desc: np.ndarray) -> np.ndarray:
    """RootSIFT (L1-normalise, sqrt) stored as uint8: 4x smaller than float32, same matches."""
    d = desc.astype(np.float32)
    d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-12)
    d = np.sqrt(d)  # now L2-normalised, components in [0, 1]
    return np.clip(np.rint(d * 255.0), 0, 255).astype(np.uint8)


def depth_at(depth_m: np.ndarray, xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth [m] at each keypoint (nearest pixel; NaN where the depth is 0/invalid)."""
    d = np.asarray(depth_m, dtype=np.float32)
    w, h = size
    if d.shape != (h, w):
        raise FeatureError(f"depth image is {d.shape[1]}x{d.shape[0]}, the colour image {w}x{h}")
    cols = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    z = d[rows, cols].astype(np.float32)
    z[~np.isfinite(z) | (z <= 0)] = np.nan
    return z


def depth_from_ros(data: bytes | np.ndarray, height: int, width: int, encoding: str, step: int):
    """A sensor_msgs/Image depth payload (16UC1 in mm, or 32FC1 in m) as float32 metres."""
    enc = encoding.upper()
    if enc not in ("16UC1", "32FC1", "MONO16"):
        raise FeatureError(f"depth encoding '{encoding}' is not supported (16UC1 mm or 32FC1 m)")
    item = 2 if enc in ("16UC1", "MONO16") else 4
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0 or step < width * item:
        raise FeatureError(f"depth image {width}x{height} with step {step} is malformed")
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size < step * height:
        raise FeatureError(f"depth image has {buf.size} bytes, step*height = {step * height}")
    rows = buf[: step * height].reshape(height, step)[:, : width * item]
    if item == 2:
        return rows.copy().view("<u2").astype(np.float32) / 1000.0
    return rows.copy().view("<f4").astype(np.float32)
