"""Geometric verification: relative pose from scenes of known geometry, and inlier behaviour on
real image pairs (Corridor neighbours vs non-neighbours)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from lavpr_ros.core.geometry import (
    CameraIntrinsics,
    VerificationConfig,
    rotation_angle_deg,
    verify,
)
from lavpr_ros.core.images import load_image
from lavpr_ros.core.local_features import FeatureConfig, FeatureError, Features, extract

CAM = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)


def _pose(rx: float, ry: float, rz: float, t: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.radians([rx, ry, rz]))[0]
    T[:3, 3] = t
    return T


def _project(pts_cam: np.ndarray) -> np.ndarray:
    uv = pts_cam[:, :2] / pts_cam[:, 2:3]
    return uv * [CAM.fx, CAM.fy] + [CAM.cx, CAM.cy]


def _scene(T_match_query: np.ndarray, n: int = 300, outliers: int = 60, seed: int = 0):
    """Random 3D points in front of the match camera, seen by both; each point carries the same
    random descriptor in both views (plus noise), outliers get unrelated ones."""
    rng = np.random.default_rng(seed)
    pm = np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(4, 12, n)])
    T_qm = np.linalg.inv(T_match_query)
    pq = pm @ T_qm[:3, :3].T + T_qm[:3, 3]
    keep = pq[:, 2] > 0.5
    pm, pq = pm[keep], pq[keep]
    uvm, uvq = _project(pm), _project(pq)
    uvq += rng.normal(0, 0.3, uvq.shape)  # half-pixel detection noise
    desc = rng.integers(0, 256, (len(pm), 128), dtype=np.uint8)
    noisy = np.clip(desc.astype(int) + rng.integers(-4, 5, desc.shape), 0, 255).astype(np.uint8)
    junk_xy = rng.uniform([0, 0], [640, 480], (outliers, 2))
    junk = rng.integers(0, 256, (outliers, 128), dtype=np.uint8)
    match = Features(
        "sift", uvm.astype(np.float32), desc, (640, 480), depth=pm[:, 2].astype(np.float32)
    )
    query = Features(
        "sift",
        np.vstack([uvq, junk_xy]).astype(np.float32),
        np.vstack([noisy, junk]),
        (640, 480),
    )
    return query, match


@pytest.mark.parametrize(
    "T",
    [
        _pose(3, -8, 2, (0.6, 0.05, 0.3)),
        _pose(-2, 15, 1, (-1.0, 0.1, -0.4)),
        _pose(0, 4, 0, (0.3, 0.0, 1.2)),
    ],
)
def test_monocular_essential_recovers_rotation_and_direction(T: np.ndarray) -> None:
    query, match = _scene(T)
    match.depth = np.zeros(0, np.float32)  # no depth: monocular
    r = verify(query, match, VerificationConfig(), CAM)
    assert r.verified and r.model == "essential" and not r.metric_scale, r.reason
    assert r.T_match_query is not None
    rot_err = rotation_angle_deg(r.T_match_query[:3, :3].T @ T[:3, :3])
    t_true = T[:3, 3] / np.linalg.norm(T[:3, 3])
    dir_err = math.degrees(math.acos(np.clip(r.T_match_query[:3, 3] @ t_true, -1, 1)))
    assert rot_err < 1.0 and dir_err < 3.0, (rot_err, dir_err)
    assert np.linalg.norm(r.T_match_query[:3, 3]) == pytest.approx(1.0)
    assert r.covariance.shape == (6, 6) and (np.diag(r.covariance) > 0).all()


@pytest.mark.parametrize(
    "T", [_pose(3, -8, 2, (0.6, 0.05, 0.3)), _pose(1, 20, -3, (-1.5, 0.2, 0.8))]
)
def test_rgbd_pnp_is_metric(T: np.ndarray) -> None:
    query, match = _scene(T)
    r = verify(query, match, VerificationConfig(), CAM)
    assert r.verified and r.model == "pnp" and r.metric_scale, r.reason
    rot_err = rotation_angle_deg(r.T_match_query[:3, :3].T @ T[:3, :3])
    t_err = np.linalg.norm(r.T_match_query[:3, 3] - T[:3, 3]) / np.linalg.norm(T[:3, 3])
    assert rot_err < 1.0 and t_err < 0.02, (rot_err, t_err)


def test_uncalibrated_checks_geometry_without_pose() -> None:
    query, match = _scene(_pose(3, -8, 2, (0.6, 0.05, 0.3)))
    r = verify(query, match, VerificationConfig(), None)
    assert r.verified and r.model in ("fundamental", "homography") and not r.has_transform


def test_unrelated_features_rejected() -> None:
    q, _ = _scene(_pose(0, 5, 0, (0.5, 0, 0)), seed=1)
    _, m = _scene(_pose(0, 5, 0, (0.5, 0, 0)), seed=2)
    r = verify(q, m, VerificationConfig(), CAM)
    assert not r.verified and "matches" in r.reason


def _textured(seed: int = 0) -> np.ndarray:
    """A real Nordland frame tiled and upscaled to 640x480: texture for the warp test."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (60, 80), dtype=np.uint8)
    img = cv2.resize(noise, (640, 480), interpolation=cv2.INTER_CUBIC)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.dstack([img, img, img])


def test_real_features_on_a_warped_textured_plane() -> None:
    """SIFT on rendered views of a textured plane at a known pose: the homography explains it."""
    img = _textured()
    R = cv2.Rodrigues(np.radians([0, 6, 0]))[0]
    t = np.array([0.3, 0.0, 0.0])
    n, d = np.array([0, 0, 1.0]), 5.0
    H = CAM.K @ (R - np.outer(t, n) / d) @ np.linalg.inv(CAM.K)  # match view -> query view
    warped = cv2.warpPerspective(img, H, (640, 480))
    cfg = FeatureConfig("sift", max_features=800)
    fm, fq = extract(img, cfg), extract(warped, cfg)
    assert len(fm) > 300 and len(fq) > 300
    r = verify(fq, fm, VerificationConfig(), None)
    assert r.verified and r.inliers > 100, r.reason


def test_textureless_black_and_too_small_frames() -> None:
    cfg = FeatureConfig()
    black = extract(np.zeros((480, 640, 3), np.uint8), cfg)
    flat = extract(np.full((480, 640, 3), 128, np.uint8), cfg)
    assert len(black) == 0 and len(flat) == 0
    r = verify(black, flat, VerificationConfig(), CAM)
    assert not r.verified and "textureless" in r.reason
    with pytest.raises(FeatureError, match="too small"):
        extract(np.zeros((32, 64, 3), np.uint8), cfg)


def test_depth_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(FeatureError, match="depth image is 320x240"):
        extract(_textured(), FeatureConfig(), depth_m=np.ones((240, 320), np.float32))


def test_corridor_neighbours_verify_more_than_strangers(data_root) -> None:
    """Real pairs: inliers of true neighbours (ground truth) against random non-neighbours."""
    root = data_root / "corridor"
    gt = json.loads((root / "ground_truth.json").read_text())
    cfg = FeatureConfig("sift", max_features=500)
    vc = VerificationConfig(min_inliers=8, min_inlier_ratio=0.0)
    rng = np.random.default_rng(0)
    same, other = [], []
    for row in gt[::10]:
        q = extract(load_image(root / "query" / f"{row['query']:07d}.jpg"), cfg)
        pos = row["positives"][len(row["positives"]) // 2]
        far = int(rng.choice([j for j in range(111) if abs(j - pos) > 20]))
        m = extract(load_image(root / "ref" / f"{pos:07d}.jpg"), cfg)
        f = extract(load_image(root / "ref" / f"{far:07d}.jpg"), cfg)
        same.append(verify(q, m, vc, None).inliers)
        other.append(verify(q, f, vc, None).inliers)
    print("corridor inliers: neighbours", same, "strangers", other)
    assert np.median(same) > np.median(other)


def test_matrix_to_quaternion_round_trip() -> None:
    from lavpr_ros.core.geometry import matrix_to_quaternion

    rng = np.random.default_rng(3)
    for _ in range(50):
        rvec = rng.normal(0, 1.5, 3)
        R = cv2.Rodrigues(rvec)[0]
        x, y, z, w = matrix_to_quaternion(R)
        back = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        np.testing.assert_allclose(back, R, atol=1e-9)
