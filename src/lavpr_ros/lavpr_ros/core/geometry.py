"""Geometric verification of a loop-closure candidate and the relative camera pose.

Ratio-test matching (mutual nearest neighbours) of the two keyframes' local features, then a
robust model fit with OpenCV's USAC (MAGSAC++):

- **RGB-D** (depth at the match keyframe's keypoints): PnP-RANSAC of the match's 3D points
  against the query's pixels gives a metric pose (``metric_scale`` True);
- **calibrated monocular** (intrinsics from ``sensor_msgs/CameraInfo`` or parameters): the
  essential matrix and ``recoverPose`` give the rotation and the unit translation direction;
- **uncalibrated**: a fundamental matrix (or a homography when the scene is planar) checks the
  geometry; there is no pose then (``has_transform`` False).

Conventions: ``T_match_query`` (4x4) is the pose of the query camera in the match camera's frame:
it maps a point from query-camera coordinates to match-camera coordinates, both camera *optical*
frames (REP-103 optical convention: x right, y down, z forward).

Covariance (6x6, row-major, order x y z rx ry rz): a documented heuristic, not a calibrated
estimate — the rotation standard deviation is the inlier reprojection RMS over the focal length,
divided by sqrt(inliers), floored at 0.2 deg; the translation's is 2 % of its length + 2 cm (metric)
divided by sqrt(inliers / 20), or 0.1 per axis of the unit direction (monocular, scale unknown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .local_features import Features


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the colour camera (from CameraInfo ``k``/``d`` or parameters)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    dist: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in vals) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"bad intrinsics fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"bad image size {self.width}x{self.height}")

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @classmethod
    def from_camera_info(
        cls, k: list[float], d: list[float], width: int, height: int
    ) -> CameraIntrinsics:
        """From CameraInfo's row-major 3x3 ``k`` and distortion ``d`` (a zero K = uncalibrated:
        ValueError)."""
        if len(k) != 9 or not k[0] or not k[4]:
            raise ValueError("CameraInfo has no calibration (K is zero)")
        return cls(
            float(k[0]),
            float(k[4]),
            float(k[2]),
            float(k[5]),
            int(width),
            int(height),
            tuple(float(v) for v in d),
        )

    def scaled_to(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera at another resolution (a resized image stream)."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height, self.dist
        )


@dataclass
class VerificationConfig:
    """Thresholds of the geometric check (place_map parameters ``verification.*``)."""

    ratio: float = 0.8  # Lowe's ratio test
    ransac_px: float = 1.5  # inlier threshold [px, in the camera's own pixels]
    confidence: float = 0.999
    min_inliers: int = 20
    min_inlier_ratio: float = 0.3  # inliers / ratio-test matches

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1 or not self.ransac_px > 0 or not 0 < self.confidence < 1:
            raise ValueError("ratio in (0, 1], ransac_px > 0, confidence in (0, 1) required")
        if self.min_inliers < 5 or not 0 <= self.min_inlier_ratio <= 1:
            raise ValueError("min_inliers >= 5 and min_inlier_ratio in [0, 1] required")


@dataclass
class VerificationResult:
    verified: bool
    reason: str
    matches: int = 0
    inliers: int = 0
    model: str = ""  # "pnp", "essential", "fundamental", "homography" or ""
    T_match_query: np.ndarray | None = None  # 4x4
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))
    metric_scale: bool = False

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    @property
    def has_transform(self) -> bool:
        return self.T_match_query is not None


def match_features(q: Features, m: Features, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (iq, im) of mutual ratio-test matches."""
    import cv2

    if len(q) < 2 or len(m) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    if q.kind == "orb":
        norm, dq, dm = cv2.NORM_HAMMING, q.desc, m.desc
    else:
        norm, dq, dm = cv2.NORM_L2, q.desc.astype(np.float32), m.desc.astype(np.float32)
    bf = cv2.BFMatcher(norm)
    fwd = bf.knnMatch(dq, dm, k=2)
    back = {mm[0].queryIdx: mm[0].trainIdx for mm in bf.knnMatch(dm, dq, k=1) if mm}
    iq, im = [], []
    for pair in fwd:
        if len(pair) < 2:
            continue
        a, b = pair
        if a.distance < ratio * b.distance and back.get(a.trainIdx) == a.queryIdx:
            iq.append(a.queryIdx)
            im.append(a.trainIdx)
    return np.array(iq, int), np.array(im, int)


def verify(
    query: Features,
    match: Features,
    config: VerificationConfig,
    intrinsics: CameraIntrinsics | None = None,
) -> VerificationResult:
    """Is ``match`` the same place seen from a geometrically consistent viewpoint?"""
    import cv2

    if query.kind != match.kind:
        return VerificationResult(False, f"feature types differ ({query.kind} vs {match.kind})")
    if len(query) < config.min_inliers or len(match) < config.min_inliers:
        return VerificationResult(
            False,
            f"too few keypoints ({len(query)} query, {len(match)} match < min_inliers "
            f"{config.min_inliers}): textureless or dark frame",
        )
    iq, im = match_features(query, match, config.ratio)
    n = len(iq)
    if n < config.min_inliers:
        return VerificationResult(
            False, f"{n} feature matches < min_inliers {config.min_inliers}", matches=n
        )
    pq = query.xy[iq].astype(np.float64)
    pm = match.xy[im].astype(np.float64)
    K = None
    if intrinsics is not None:
        w, h = query.size
        cam = (
            intrinsics
            if (intrinsics.width, intrinsics.height) == (w, h)
            else (intrinsics.scaled_to(w, h))
        )
        K = cam.K
        if cam.dist and any(cam.dist):
            dist = np.asarray(cam.dist, dtype=np.float64)
            pq = cv2.undistortPoints(pq[:, None], K, dist, P=K)[:, 0]
            pm = cv2.undistortPoints(pm[:, None], K, dist, P=K)[:, 0]
    zm = match.depth[im] if match.has_depth else None
    if K is not None and zm is not None and np.isfinite(zm).sum() >= config.min_inliers:
        return _pnp(pq, pm, zm, K, n, config)
    if K is not None:
        return _essential(pq, pm, K, n, config)
    return _uncalibrated(pq, pm, n, config)


def _decide(n: int, inliers: int, config: VerificationConfig, model: str) -> tuple[bool, str]:
    ratio = inliers / n if n else 0.0
    if inliers < config.min_inliers:
        return False, f"{model}: {inliers} inliers < min_inliers {config.min_inliers}"
    if ratio < config.min_inlier_ratio:
        return False, (
            f"{model}: inlier ratio {ratio:.2f} < min_inlier_ratio {config.min_inlier_ratio}"
        )
    return True, f"verified: {model}, {inliers}/{n} inliers"


def _pnp(pq, pm, zm, K, n, config) -> VerificationResult:
    import cv2

    ok = np.isfinite(zm)
    pts3 = (
        np.column_stack(
            [(pm[ok, 0] - K[0, 2]) / K[0, 0], (pm[ok, 1] - K[1, 2]) / K[1, 1], np.ones(ok.sum())]
        )
        * zm[ok, None]
    )
    pts2 = pq[ok]
    found, rvec, tvec, idx = cv2.solvePnPRansac(
        pts3,
        pts2,
        K,
        None,
        reprojectionError=config.ransac_px * 2,
        confidence=config.confidence,
        iterationsCount=1000,
        flags=cv2.SOLVEPNP_EPNP,
    )
    if not found or idx is None:
        return VerificationResult(False, "pnp: no consistent pose", matches=n)
    idx = idx[:, 0]
    rvec, tvec = cv2.solvePnPRefineLM(pts3[idx], pts2[idx], K, None, rvec, tvec)
    inliers = len(idx)
    verified, reason = _decide(n, inliers, config, "pnp")
    R, _ = cv2.Rodrigues(rvec)
    T_query_match = np.eye(4)
    T_query_match[:3, :3], T_query_match[:3, 3] = R, tvec[:, 0]
    T = np.linalg.inv(T_query_match)
    proj, _ = cv2.projectPoints(pts3[idx], rvec, tvec, K, None)
    rms = float(np.sqrt(np.mean(np.sum((proj[:, 0] - pts2[idx]) ** 2, axis=1))))
    cov = _covariance(rms, K, inliers, float(np.linalg.norm(T[:3, 3])), metric=True)
    return VerificationResult(
        verified,
        reason,
        n,
        inliers,
        "pnp",
        T if verified else None,
        cov if verified else np.zeros((6, 6)),
        metric_scale=verified,
    )


def _essential(pq, pm, K, n, config) -> VerificationResult:
    import cv2

    E, mask = cv2.findEssentialMat(pq, pm, K, cv2.USAC_MAGSAC, config.confidence, config.ransac_px)
    if E is None or E.shape != (3, 3) or mask is None:
        return VerificationResult(False, "essential matrix: no consistent model", matches=n)
    inl = mask[:, 0].astype(bool)
    # recoverPose(E, points1, points2): (R, t) maps camera-1 (query) coordinates into camera-2
    # (match) coordinates, i.e. T_match_query.
    _, R, t, pose_mask = cv2.recoverPose(E, pq[inl], pm[inl], K)
    inliers = int((pose_mask[:, 0] > 0).sum()) if pose_mask is not None else int(inl.sum())
    verified, reason = _decide(n, inliers, config, "essential")
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t[:, 0] / max(float(np.linalg.norm(t)), 1e-12)
    rms = _epipolar_rms(E, pq[inl], pm[inl], K)
    cov = _covariance(rms, K, inliers, 1.0, metric=False)
    return VerificationResult(
        verified,
        reason,
        n,
        inliers,
        "essential",
        T if verified else None,
        cov if verified else np.zeros((6, 6)),
    )


def _uncalibrated(pq, pm, n, config) -> VerificationResult:
    import cv2

    F, fmask = cv2.findFundamentalMat(pq, pm, cv2.USAC_MAGSAC, config.ransac_px, config.confidence)
    H, hmask = cv2.findHomography(pq, pm, cv2.USAC_MAGSAC, config.ransac_px * 2)
    f_in = int(fmask.sum()) if F is not None and fmask is not None else 0
    h_in = int(hmask.sum()) if H is not None and hmask is not None else 0
    # A planar scene (or pure rotation) makes F degenerate: a homography then explains it.
    model, inliers = ("homography", h_in) if h_in >= 0.8 * f_in else ("fundamental", f_in)
    verified, reason = _decide(n, inliers, config, model)
    return VerificationResult(
        verified,
        reason + ("" if not verified else " (no intrinsics: no relative pose)"),
        n,
        inliers,
        model,
    )


def _epipolar_rms(E, pq, pm, K) -> float:
    """RMS Sampson-like distance of inliers to their epipolar lines [px]."""
    Kinv = np.linalg.inv(K)
    F = Kinv.T @ E @ Kinv
    x1 = np.column_stack([pq, np.ones(len(pq))])
    x2 = np.column_stack([pm, np.ones(len(pm))])
    l2 = x1 @ F.T
    d = np.abs(np.sum(x2 * l2, axis=1)) / np.maximum(np.hypot(l2[:, 0], l2[:, 1]), 1e-12)
    return float(np.sqrt(np.mean(d**2))) if len(d) else 0.0


def _covariance(rms_px: float, K, inliers: int, t_norm: float, metric: bool) -> np.ndarray:
    f = float((K[0, 0] + K[1, 1]) / 2)
    sig_rot = max(math.radians(0.2), (max(rms_px, 0.3) / f) / math.sqrt(max(inliers, 1)))
    # Monocular: 0.1 per axis of the unit direction (the scale itself is unknown).
    sig_t = (0.02 * t_norm + 0.02) / math.sqrt(max(inliers, 1) / 20.0) if metric else 0.1
    return np.diag([sig_t**2] * 3 + [sig_rot**2] * 3)


def rotation_angle_deg(R: np.ndarray) -> float:
    c = (np.trace(R[:3, :3]) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion of a rotation matrix, w >= 0."""
    from scipy.spatial.transform import Rotation

    out = Rotation.from_matrix(np.asarray(R, dtype=np.float64)[:3, :3]).as_quat()
    return out if out[3] >= 0 else -out
