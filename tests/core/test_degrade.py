"""core/degrade.py: deterministic blur/weather degradations and the ``lavpr degrade`` tool."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from lavpr_ros.core.degrade import KINDS, degrade, degrade_folder, seed_for


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, ::8] = 255  # sharp stripes: blur must flatten them
    img[20:40, 20:60] = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    return img


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_and_changes_the_image(kind) -> None:
    img = _scene()
    a, b = degrade(img, kind, 3, seed=7), degrade(img, kind, 3, seed=7)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - img).mean() > 3
    if kind != "blur":  # random parts follow the seed
        assert not np.array_equal(a, degrade(img, kind, 3, seed=8))


def test_severity_orders_the_damage() -> None:
    img = _scene()

    def sharpness(x):
        return np.abs(np.diff(x.astype(float), axis=1)).mean()

    blur = [sharpness(degrade(img, "blur", s)) for s in range(1, 6)]
    assert all(a > b for a, b in itertools.pairwise(blur))
    dark = [degrade(img, "dark", s, seed=1).mean() for s in range(1, 6)]
    assert all(a > b for a, b in itertools.pairwise(dark))
    fog = [degrade(img, "fog", s, seed=1).std() for s in range(1, 6)]  # contrast drops
    assert all(a > b for a, b in itertools.pairwise(fog))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(_scene(), "hail", 2)
    with pytest.raises(ValueError, match="severity"):
        degrade(_scene(), "blur", 6)
    with pytest.raises(ValueError, match="RGB uint8"):
        degrade(np.zeros((4, 4), np.uint8), "fog", 1)


def test_folder_tool_is_reproducible(tmp_path) -> None:
    from lavpr_ros.cli.main import main

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_scene(i)).save(src / f"{i:04d}.png")
    (src / "notes.txt").write_text("not an image")
    assert (
        main(
            [
                "degrade",
                "--kind",
                "rain",
                "--severity",
                "2",
                "--src",
                str(src),
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    again = degrade_folder(src, tmp_path / "b", "rain", 2)
    assert [p.name for p in again] == ["0000.png", "0001.png", "0002.png"]
    for p in again:
        assert (tmp_path / "a" / p.name).read_bytes() == p.read_bytes()
    # Per-image seeds: two images never share their rain pattern.
    assert seed_for("0000.png", "rain", 2) != seed_for("0001.png", "rain", 2)
    with pytest.raises(ValueError, match="differ"):
        degrade_folder(src, src, "fog", 1)
    assert (
        main(
            [
                "degrade",
                "--kind",
                "fog",
                "--src",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
