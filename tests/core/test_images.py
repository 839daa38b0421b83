"""ROS image payload conversion: encodings, row padding, refusals, compressed and files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lavpr_ros.core.images import (
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    image_from_compressed,
    image_from_raw,
    load_image,
)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _padded(arr: np.ndarray, step: int) -> bytes:
    """Rows of ``arr`` (H, W*C bytes) each padded to ``step`` bytes with junk."""
    h = arr.shape[0]
    rows = arr.reshape(h, -1)
    buf = np.full((h, step), 0xAB, dtype=np.uint8)
    buf[:, : rows.shape[1]] = rows
    return buf.tobytes()


def test_rgb8_roundtrip(rgb: np.ndarray) -> None:
    out = image_from_raw(rgb.tobytes(), 5, 7, "rgb8", 21)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("bgr8", lambda a: a[:, :, ::-1]),
        ("rgba8", lambda a: np.dstack([a, np.full(a.shape[:2], 7, np.uint8)])),
        ("bgra8", lambda a: np.dstack([a[:, :, ::-1], np.full(a.shape[:2], 7, np.uint8)])),
    ],
)
def test_colour_encodings_with_row_padding(rgb: np.ndarray, encoding: str, make) -> None:
    src = np.ascontiguousarray(make(rgb))
    step = src.shape[1] * src.shape[2] + 5  # padded rows
    out = image_from_raw(_padded(src, step), 5, 7, encoding, step)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous


def test_mono8_replicated_to_three_channels() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = image_from_raw(_padded(grey, 8), 3, 4, "mono8", 8)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_accepts_bytearray_memoryview_and_ndarray(rgb: np.ndarray) -> None:
    raw = rgb.tobytes()
    for data in (bytearray(raw), memoryview(raw), np.frombuffer(raw, np.uint8)):
        np.testing.assert_array_equal(image_from_raw(data, 5, 7, "RGB8", 21), rgb)


def test_result_does_not_alias_input(rgb: np.ndarray) -> None:
    raw = bytearray(rgb.tobytes())
    out = image_from_raw(raw, 5, 7, "rgb8", 21)
    raw[0] = (raw[0] + 1) % 256
    assert out[0, 0, 0] == rgb[0, 0, 0]


def test_unknown_encoding_names_it_and_lists_supported(rgb: np.ndarray) -> None:
    with pytest.raises(ImageFormatError) as exc:
        image_from_raw(rgb.tobytes(), 5, 7, "yuv422", 14)
    msg = str(exc.value)
    assert "yuv422" in msg and all(enc in msg for enc in SUPPORTED_ENCODINGS)


@pytest.mark.parametrize(("h", "w"), [(0, 7), (5, 0), (-1, 7)])
def test_empty_size_refused(h: int, w: int) -> None:
    with pytest.raises(ImageFormatError, match="empty size"):
        image_from_raw(b"", h, w, "rgb8", max(w, 0) * 3)


def test_step_too_small_refused(rgb: np.ndarray) -> None:
    with pytest.raises(ImageFormatError, match="step 20 is smaller"):
        image_from_raw(rgb.tobytes(), 5, 7, "rgb8", 20)


def test_truncated_data_gives_numbers(rgb: np.ndarray) -> None:
    with pytest.raises(ImageFormatError) as exc:
        image_from_raw(rgb.tobytes()[:-1], 5, 7, "rgb8", 21)
    assert "104 bytes" in str(exc.value) and "105" in str(exc.value)


def test_absurd_size_refused() -> None:
    with pytest.raises(ImageFormatError, match="implausible"):
        image_from_raw(b"\0" * 16, 100_000, 100_000, "mono8", 100_000)


def test_is_a_value_error() -> None:
    assert issubclass(ImageFormatError, ValueError)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_compressed_roundtrip(fmt: str) -> None:
    img = np.zeros((16, 24, 3), dtype=np.uint8)
    img[:8] = (200, 30, 10)
    img[8:] = (10, 40, 220)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    out = image_from_compressed(buf.getvalue(), fmt.lower())
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    if fmt == "PNG":
        np.testing.assert_array_equal(out, img)
    else:  # lossy: compare away from the colour edge, where ringing is expected
        assert np.abs(out[:5].astype(int) - img[:5].astype(int)).max() <= 12
        assert np.abs(out[11:].astype(int) - img[11:].astype(int)).max() <= 12


def test_compressed_grey_png_becomes_rgb() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 77, np.uint8)).save(buf, format="PNG")
    out = image_from_compressed(buf.getvalue())
    assert out.shape == (4, 4, 3) and (out == 77).all()


def test_compressed_empty_and_corrupt() -> None:
    with pytest.raises(ImageFormatError, match="empty"):
        image_from_compressed(b"", "jpeg")
    with pytest.raises(ImageFormatError, match="cannot decode"):
        image_from_compressed(b"\x00garbage" * 20, "jpeg")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, format="JPEG")
    with pytest.raises(ImageFormatError):
        image_from_compressed(buf.getvalue()[:60], "jpeg")  # truncated stream


def test_load_image(tmp_path) -> None:
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(img).convert("RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), img)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageFormatError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
