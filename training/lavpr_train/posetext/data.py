"""Pose-text training data: generated clips, or a folder of real clips; text embeddings cached.

Real data (the DrivingScenePTX layout as used here), one pair of files per clip in one folder:

* ``<clip>.npy``: poses, (T, 7) x y z qx qy qz qw or (T, 3) x y yaw (metres, radians, a
  fixed frame; yaw counter-clockwise = left);
* ``<clip>.json``: ``{"captions": ["...", ...], "rate_hz": 10}`` (or ``"stamps": [...]`` in
  seconds instead of ``rate_hz``; ``"caption": "..."`` for a single one).

Every caption of a clip is a positive of the clip's final window (``window_s`` seconds ending at
its last pose); other clips are negatives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .generator import compatible, keyframe_subsample, make_clip

DEFAULT_TEXT_MODEL = "models/minilm-l6-v2"


@dataclass
class PoseTextSet:
    features: np.ndarray  # (N, steps, F) float32
    captions: list[str]  # (N,)
    positives: np.ndarray  # (N captions, N windows) bool
    signatures: list[tuple]  # described events (synthetic) or (clip name,) (real)


def feature_config(**kw):
    from lavpr_ros.core.pose_text import PoseFeatureConfig

    return PoseFeatureConfig(**kw)


def synthetic_set(
    n: int, seed: int, keyframe_prob: float = 0.5, cfg=None, rate_hz: float = 5.0
) -> PoseTextSet:
    """``n`` generated windows + captions; with probability ``keyframe_prob`` a window's poses are
    keyframe-subsampled first (what text_nav gets from place_map)."""
    from lavpr_ros.core.pose_text import pose_window_features

    cfg = cfg or feature_config()
    rng = np.random.default_rng(seed)
    feats, caps, sigs, wins = [], [], [], []
    for _ in range(n):
        c = make_clip(rng, cfg.window_s, rate_hz)
        s, p = c.stamps, c.poses
        if rng.random() < keyframe_prob:
            s, p = keyframe_subsample(s, p)
        feats.append(pose_window_features(s, p, None, cfg))
        caps.append(c.caption)
        sigs.append(c.described)
        wins.append(c.window_events)
    pos = np.array([[compatible(d, w) for w in wins] for d in sigs], dtype=bool)
    return PoseTextSet(np.stack(feats), caps, pos, sigs)


def load_clip_folder(folder: str | Path, cfg=None) -> PoseTextSet:
    """Real clips (layout in the module docstring); one sample per (clip, caption)."""
    from lavpr_ros.core.pose_text import pose_window_features

    cfg = cfg or feature_config()
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"pose-text clip folder not found: {root}")
    feats, caps, names = [], [], []
    for npy in sorted(root.glob("*.npy")):
        meta_path = npy.with_suffix(".json")
        if not meta_path.is_file():
            raise FileNotFoundError(f"{npy.name} has no caption file {meta_path.name}")
        meta = json.loads(meta_path.read_text("utf-8"))
        captions = meta.get("captions") or ([meta["caption"]] if meta.get("caption") else [])
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            raise ValueError(f"{meta_path}: needs a non-empty 'captions' list of strings")
        poses = np.load(npy, allow_pickle=False)
        if "stamps" in meta:
            stamps = np.asarray(meta["stamps"], dtype=np.float64)
        else:
            rate = float(meta.get("rate_hz", 0))
            if rate <= 0:
                raise ValueError(f"{meta_path}: give 'rate_hz' (> 0) or 'stamps'")
            stamps = np.arange(len(poses)) / rate
        f = pose_window_features(stamps, poses, None, cfg)
        for c in captions:
            feats.append(f)
            caps.append(c.strip())
            names.append(npy.stem)
    if not feats:
        raise ValueError(f"no <clip>.npy + <clip>.json pairs in {root}")
    pos = np.array([[a == b for b in names] for a in names], dtype=bool)
    return PoseTextSet(np.stack(feats), caps, pos, [(n,) for n in names])


def text_embeddings(
    texts: list[str], text_model: str | Path = DEFAULT_TEXT_MODEL, cache_dir: str = "/tmp"
) -> tuple[np.ndarray, str]:
    """Frozen sentence embeddings with the runtime's TextEncoder (ONNX), cached per text list.
    Returns (N, 384) float32 and the encoder's model id."""
    from lavpr_ros.core.text_encoder import TextEncoder

    from ..paths import repo_root

    tm = Path(text_model)
    if not tm.is_absolute() and not tm.exists():
        tm = repo_root() / tm
    enc = TextEncoder(tm)
    uniq = sorted(set(texts))
    key = hashlib.sha256(("\n".join(uniq) + enc.manifest.sha256).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"lavpr_posetext_text_{key}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            table = dict(zip(uniq, z["emb"], strict=True))
    else:
        emb = enc.encode(uniq)
        np.savez(cache, emb=emb)
        table = dict(zip(uniq, emb, strict=True))
    return np.stack([table[t] for t in texts]).astype(np.float32), enc.model_id
