"""Degraded query images, as LaVPR's MSLS-Blur and MSLS-Weather: blur, rain, fog, snow, dark.

Plain numpy + Pillow, deterministic: the random parts (rain streaks, snow flakes, fog texture,
sensor noise) come from a generator seeded by (seed, kind, severity, image name), so the same
command gives byte-identical images on any machine with the same Pillow/numpy. Severity runs
1 (mild) .. 5 (severe); sizes scale with the image, so a 160x120 frame and a 1920x1080 one look
alike at the same severity.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("blur", "rain", "fog", "snow", "dark")
MAX_SEVERITY = 5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# Per severity 1..5.
_BLUR_SIGMA = (1.0, 2.0, 3.0, 4.5, 6.0)  # Gaussian sigma in pixels of a 160-px-wide image
_FOG_ALPHA = (0.25, 0.4, 0.55, 0.68, 0.8)  # haze opacity
_RAIN_DROPS = (0.002, 0.004, 0.007, 0.011, 0.016)  # streaks per pixel
_SNOW_FLAKES = (0.003, 0.006, 0.01, 0.015, 0.022)  # flakes per pixel
_DARK_GAMMA = (1.4, 1.8, 2.2, 2.7, 3.2)
_DARK_GAIN = (0.75, 0.6, 0.45, 0.35, 0.25)
_DARK_NOISE = (2.0, 3.5, 5.0, 7.0, 9.0)  # sensor noise sigma in grey levels


def seed_for(name: str, kind: str, severity: int, seed: int = 0) -> int:
    """The generator seed of one image: stable across runs, processes and machines."""
    return zlib.crc32(f"{seed}:{kind}:{severity}:{name}".encode()) & 0x7FFFFFFF


def _check(rgb: np.ndarray, kind: str, severity: int) -> np.ndarray:
    if kind not in KINDS:
        raise ValueError(f"unknown degradation '{kind}'; choose one of {', '.join(KINDS)}")
    if isinstance(severity, bool) or not 1 <= int(severity) <= MAX_SEVERITY:
        raise ValueError(f"severity must be 1..{MAX_SEVERITY}, got {severity!r}")
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape[:2]:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {arr.shape} {arr.dtype}")
    return arr


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Low-frequency noise in [0, 1] (a coarse random grid, bicubic-upsampled)."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    img = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def _blur(img: Image.Image, s: int) -> Image.Image:
    scale = max(img.size) / 160.0
    return img.filter(ImageFilter.GaussianBlur(_BLUR_SIGMA[s - 1] * scale))


def _fog(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    haze = 200.0 + 40.0 * _smooth_noise(rng, h, w)[..., None]  # uneven grey-white haze
    # Thicker towards the top of the image (far away in forward-looking views).
    rows = np.linspace(1.0, 0.7, h, dtype=np.float32)[:, None, None]
    a = _FOG_ALPHA[s - 1] * rows * (0.8 + 0.4 * _smooth_noise(rng, h, w, 4)[..., None])
    return x * (1.0 - a) + haze * a


def _rain(img: Image.Image, s: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    scale = max(w, h) / 160.0
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    n = int(_RAIN_DROPS[s - 1] * w * h)
    slant = rng.uniform(-0.3, 0.3)  # one wind direction per image
    for _ in range(n):
        x0, y0 = rng.uniform(0, w), rng.uniform(-0.1 * h, h)
        length = rng.uniform(0.05, 0.15) * h
        draw.line(
            [(x0, y0), (x0 + slant * length, y0 + length)],
            fill=int(rng.uniform(120, 220)),
            width=max(1, round(scale * rng.uniform(0.6, 1.4))),
        )
    layer = layer.filter(ImageFilter.GaussianBlur(0.5 * scale))
    x = np.asarray(img, dtype=np.float32) * (1.0 - 0.05 * s)  # overcast
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    x = x * (1 - alpha) + 225.0 * alpha
    out = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(0.3 * s * scale))  # wet lens


def _snow(img: Image.Image, s: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    scale = max(w, h) / 160.0
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    n = int(_SNOW_FLAKES[s - 1] * w * h)
    for _ in range(n):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        r = scale * rng.uniform(0.5, 1.2 + 0.3 * s)
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=int(rng.uniform(180, 255)))
    layer = layer.filter(ImageFilter.GaussianBlur(0.4 * scale))
    x = np.asarray(img, dtype=np.float32)
    x = x * (1 - 0.06 * s) + 255.0 * 0.06 * s  # whitened, low-contrast air
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    x = x * (1 - alpha) + 250.0 * alpha
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def _dark(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    y = 255.0 * _DARK_GAIN[s - 1] * (x / 255.0) ** _DARK_GAMMA[s - 1]
    return y + rng.normal(0.0, _DARK_NOISE[s - 1], size=x.shape)


def degrade(rgb: np.ndarray, kind: str, severity: int, seed: int = 0) -> np.ndarray:
    """A degraded copy of an RGB uint8 image (same size); ``seed`` fixes the random parts."""
    arr = _check(rgb, kind, severity)
    s = int(severity)
    rng = np.random.default_rng(int(seed))
    img = Image.fromarray(np.ascontiguousarray(arr))
    if kind == "blur":
        out = np.asarray(_blur(img, s))
    elif kind == "rain":
        out = np.asarray(_rain(img, s, rng))
    elif kind == "snow":
        out = np.asarray(_snow(img, s, rng))
    elif kind == "fog":
        out = _fog(arr.astype(np.float32), s, rng)
    else:
        out = _dark(arr.astype(np.float32), s, rng)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def degrade_folder(
    src: str | Path, out: str | Path, kind: str, severity: int, seed: int = 0
) -> list[Path]:
    """Degrade every JPEG/PNG directly in ``src`` into ``out`` (same file names; JPEGs saved at
    quality 95). Returns the written paths, sorted."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"source image folder not found: {src}")
    if src.resolve() == out.resolve():
        raise ValueError("--out must differ from --src (the originals would be overwritten)")
    paths = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no .jpg/.png images in {src}")
    _check(np.zeros((1, 1, 3), np.uint8), kind, severity)  # fail before writing anything
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in paths:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"))
        img = Image.fromarray(degrade(rgb, kind, severity, seed_for(p.name, kind, severity, seed)))
        target = out / p.name
        if p.suffix.lower() in (".jpg", ".jpeg"):
            img.save(target, quality=95)
        else:
            img.save(target)
        written.append(target)
    return written
