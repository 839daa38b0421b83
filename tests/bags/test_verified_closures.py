"""Verified loop closures on real data: the offline pipeline (same as place_map) extracts
features at keyframes and checks every accepted candidate geometrically (issue #13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lavpr_ros.bags.evaluate import evaluate_bag
from lavpr_ros.cli.main import main

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "mobilenetv2-gem-imagenet"


@pytest.fixture(scope="module")
def corridor_bag(tmp_path_factory, data_root) -> Path:
    out = tmp_path_factory.mktemp("cor") / "corridor"
    assert main(["bag", "from-images", "--dataset", "corridor", "--out", str(out), "--quiet"]) == 0
    return out


def _config(tmp_path: Path, **lc) -> Path:
    raw = yaml.safe_load((REPO / "config" / "lavpr.yaml").read_text())
    pm = raw["/**/place_map"]["ros__parameters"]
    pm["loop_closure"].update(lc)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.skipif(not (MODEL / "manifest.yaml").is_file(), reason="make models")
def test_corridor_candidates_are_verified_or_rejected(corridor_bag, tmp_path) -> None:
    cfg = _config(tmp_path, min_confidence=0.2)
    res = evaluate_bag(corridor_bag, encoder=str(MODEL), config_file=cfg, progress=False)
    counts = res.metrics["verification"]
    # 160x120 frames carry features: every accepted candidate was checked, none passed unverified.
    assert counts["verified"] > 10 and counts["rejected by verification"] > 0
    assert counts["not verifiable"] == 0
    rejected = [d for d in res.decisions if d.reason.startswith("geometric verification failed")]
    assert rejected and all(not d.accepted for d in rejected)
    # Corridor's ground truth (+-2 frames, from its ground_truth.json) is what the bag carries.
    assert res.metrics["gt_radius_m"] == pytest.approx(4.5)
    off = evaluate_bag(
        corridor_bag,
        encoder=str(MODEL),
        config_file=_no_verification(tmp_path),
        progress=False,
    )
    assert res.metrics["precision"] > off.metrics["precision"]


def _no_verification(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "config" / "lavpr.yaml").read_text())
    pm = raw["/**/place_map"]["ros__parameters"]
    pm["loop_closure"]["min_confidence"] = 0.2
    pm["verification"]["enabled"] = False
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_nordland_thumbnails_fall_back_to_the_sequence_decision(tmp_path, data_root) -> None:
    bag = tmp_path / "nord"
    argv = ["bag", "from-images", "--dataset", "nordland", "--start", "1000", "--count", "60"]
    assert main([*argv, "--out", str(bag), "--quiet"]) == 0
    res = evaluate_bag(bag, encoder="patchnorm", progress=False)
    counts = res.metrics["verification"]
    assert counts["verified"] == 0 and counts["not verifiable"] == res.metrics["loop_closures"]
    assert counts["keyframes_without_features"] == res.metrics["keyframes"]
    assert res.metrics["loop_closures"] > 10 and res.metrics["precision"] > 0.9
