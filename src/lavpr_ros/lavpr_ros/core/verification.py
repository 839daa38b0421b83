"""Verified loop closures: features at keyframe time, a geometric check of accepted candidates.

The frame pipeline calls :meth:`KeyframeVerifier.on_keyframe` when a frame becomes a keyframe
(its local features are stored with the map) and :meth:`KeyframeVerifier.check` for a candidate
that the sequence decision accepted. The check either confirms it (``verified``, with the relative
pose when the camera is calibrated), rejects it (the closure is then not published, and the
reason says why), or cannot run — an image too small for features (Nordland's 64x32), no image
for the keyframe, or a place of a map saved before features existed — in which case the sequence
decision stands, reported as ``verified: false`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import CameraIntrinsics, VerificationConfig, VerificationResult, verify
from .local_features import FeatureConfig, FeatureError, Features, extract, too_small
from .place_map import PlaceMap

# Outcomes of a check (counted in diagnostics).
VERIFIED = "verified"
FAILED = "rejected by verification"
UNVERIFIABLE = "not verifiable"


@dataclass
class CheckOutcome:
    status: str  # VERIFIED, FAILED or UNVERIFIABLE
    reason: str
    result: VerificationResult | None = None


class KeyframeVerifier:
    """Feature extraction at keyframes and the geometric check, with the camera's intrinsics
    (set from CameraInfo or parameters; None = uncalibrated: no relative pose)."""

    def __init__(
        self,
        features: FeatureConfig | None = None,
        geometry: VerificationConfig | None = None,
        intrinsics: CameraIntrinsics | None = None,
    ) -> None:
        self.features = features or FeatureConfig()
        self.geometry = geometry or VerificationConfig()
        self.intrinsics = intrinsics
        self.counts = {VERIFIED: 0, FAILED: 0, UNVERIFIABLE: 0, "keyframes_without_features": 0}

    def on_keyframe(
        self,
        place_map: PlaceMap,
        place_id: int | None,
        image: np.ndarray | None,
        depth_m: np.ndarray | None = None,
    ) -> tuple[Features | None, str]:
        """Features of a new keyframe (stored under ``place_id`` when it joined the map); the
        second value says why there are none."""
        if image is None:
            self.counts["keyframes_without_features"] += 1
            return None, "no image received for this keyframe"
        if too_small(image.shape, self.features):
            self.counts["keyframes_without_features"] += 1
            return None, (
                f"image {image.shape[1]}x{image.shape[0]} too small for local features "
                f"(min_image_side {self.features.min_image_side} px)"
            )
        note = ""
        try:
            feats = extract(image, self.features, depth_m)
        except FeatureError as exc:  # e.g. a depth image of the wrong size: use no depth
            feats = extract(image, self.features)
            note = f"depth ignored: {exc}"
        if place_id is not None:
            place_map.features.put(place_id, feats)
        return feats, note

    def check(
        self, place_map: PlaceMap, query: Features | None, why_none: str, match_id: int
    ) -> CheckOutcome:
        if query is None:
            self.counts[UNVERIFIABLE] += 1
            return CheckOutcome(UNVERIFIABLE, f"not verified: {why_none}")
        match = place_map.features.get(match_id)
        if match is None:
            self.counts[UNVERIFIABLE] += 1
            return CheckOutcome(
                UNVERIFIABLE,
                f"not verified: place {match_id} has no local features (image too small, or a "
                "map saved before features were stored)",
            )
        result = verify(query, match, self.geometry, self.intrinsics)
        if result.verified:
            self.counts[VERIFIED] += 1
            return CheckOutcome(VERIFIED, result.reason, result)
        self.counts[FAILED] += 1
        return CheckOutcome(FAILED, f"geometric verification failed: {result.reason}", result)


# Parameters of place_map (and of offline evaluation, which reads the same YAML section):
# name -> (default, description).
PARAMETERS: dict[str, tuple[object, str]] = {
    "verification.enabled": (
        True,
        "Geometrically verify every candidate the sequence decision accepts (local features of "
        "the keyframes; needs the camera images on camera/image_raw)",
    ),
    "verification.feature_type": ("sift", "Local features: sift (default) or orb (faster)"),
    "verification.max_features": (500, "Keypoints kept per keyframe (bounds the map's size)"),
    "verification.min_inliers": (12, "Geometric inliers a candidate needs"),
    "verification.min_inlier_ratio": (0.25, "Inliers / ratio-test matches a candidate needs"),
    "verification.ratio": (0.8, "Lowe's ratio test of feature matching"),
    "verification.ransac_px": (1.5, "Robust-fit inlier threshold [px]"),
    "verification.min_image_side": (
        96,
        "Images whose shorter side is below this are too small for features [px]: closures "
        "then rest on the sequence decision (verified: false)",
    ),
    "verification.image_cache": (60, "Recent camera images kept for keyframe features"),
    "camera.fx": (0.0, "Focal length x [px]; 0 = from camera/camera_info"),
    "camera.fy": (0.0, "Focal length y [px]; 0 = from camera/camera_info"),
    "camera.cx": (0.0, "Principal point x [px] (with camera.fx)"),
    "camera.cy": (0.0, "Principal point y [px] (with camera.fx)"),
    "camera.width": (0, "Image width the intrinsics refer to [px] (with camera.fx)"),
    "camera.height": (0, "Image height the intrinsics refer to [px] (with camera.fx)"),
}


# The thresholds of the geometric check: a running node may change them (the features already
# stored with the map do not depend on them). The others shape what is extracted and stored.
LIVE_PARAMETERS = (
    "verification.min_inliers",
    "verification.min_inlier_ratio",
    "verification.ratio",
    "verification.ransac_px",
)


def geometry_from_params(p: dict) -> VerificationConfig:
    """The geometric check's thresholds (``verification.*``; missing keys take their defaults);
    ValueError when they are out of range."""

    def get(key: str):
        return p.get(key, PARAMETERS[key][0])

    return VerificationConfig(
        ratio=float(get("verification.ratio")),
        ransac_px=float(get("verification.ransac_px")),
        min_inliers=int(get("verification.min_inliers")),
        min_inlier_ratio=float(get("verification.min_inlier_ratio")),
    )


def intrinsics_from_params(p: dict) -> CameraIntrinsics | None:
    """Intrinsics given as parameters (camera.fx > 0), else None (use CameraInfo)."""
    if float(p.get("camera.fx", 0.0)) <= 0:
        return None
    return CameraIntrinsics(
        float(p["camera.fx"]),
        float(p.get("camera.fy") or p["camera.fx"]),
        float(p["camera.cx"]),
        float(p["camera.cy"]),
        int(p["camera.width"]),
        int(p["camera.height"]),
    )


def verifier_from_params(p: dict) -> KeyframeVerifier | None:
    """The verifier the parameters describe (missing keys take their defaults); None if off."""

    def get(key: str):
        return p.get(key, PARAMETERS[key][0])

    if not bool(get("verification.enabled")):
        return None
    side = int(get("verification.min_image_side"))
    return KeyframeVerifier(
        FeatureConfig(
            str(get("verification.feature_type")),
            int(get("verification.max_features")),
            min_detect_side=max(240, side),
            min_image_side=side,
        ),
        geometry_from_params(p),
        intrinsics_from_params({k: get(k) for k in PARAMETERS if k.startswith("camera.")}),
    )
