"""Evaluation of an *exported* pose-text model with the runtime classes (onnxruntime, no torch):

* ``retrieval``: instruction -> trajectory-window Recall@1/5 on a held-out generated set;
* ``text_nav_effect``: a generated route with keyframes and ambiguous place descriptions (a few
  visual descriptions repeated along the route, as a real map has); each query names a place by
  its description *and* the manoeuvres before it ("a corridor with a blue door, the place where
  we turned left after the long straight"). text_nav's place ranking is text retrieval
  (query vs descriptions, MiniLM cosine), optionally combined with the pose-text score of the
  keyframe-path window ending at each place: (1 - w) * retrieval + w * pose_text. Top-1 is
  correct when it is the intended place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..paths import repo_root
from .data import DEFAULT_TEXT_MODEL, synthetic_set
from .generator import MANOEUVRES, SALIENT, caption_for, keyframe_subsample, random_events, simulate

DESCRIPTIONS = (
    "a junction next to a red brick building",
    "a corridor with a blue door",
    "an open yard with parked cars",
    "a loading dock with stacked pallets",
    "a hallway with large windows",
)


def _runtime(model_dir: str | Path, text_model: str | Path):
    from lavpr_ros.core.pose_text import PoseTextModel
    from lavpr_ros.core.text_encoder import TextEncoder

    tm = Path(text_model)
    if not tm.is_absolute() and not tm.exists():
        tm = repo_root() / tm
    enc = TextEncoder(tm)
    return PoseTextModel(model_dir, text_encoder=enc), enc


def retrieval(model_dir, n: int = 1000, seed: int = 1, text_model=DEFAULT_TEXT_MODEL) -> dict:
    model, _ = _runtime(model_dir, text_model)
    test = synthetic_set(n, seed, cfg=model.features)
    sims = model.encode_text(test.captions) @ model.encode_poses(test.features).T
    order = np.argsort(-sims, axis=1)[:, :5]
    exact = order == np.arange(n)[:, None]
    comp = np.take_along_axis(test.positives, order, axis=1)
    return {
        "gallery": n,
        "seed": seed,
        "exact_R@1": float(exact[:, 0].mean()),
        "exact_R@5": float(exact.any(1).mean()),
        "compatible_R@1": float(comp[:, 0].mean()),
        "compatible_R@5": float(comp.any(1).mean()),
        "chance_compatible_R@1": float(test.positives.mean()),
    }


def text_nav_effect(
    model_dir,
    routes: int = 10,
    seed: int = 7,
    weights=(0.0, 0.3, 0.5, 0.7, 1.0),
    text_model=DEFAULT_TEXT_MODEL,
) -> dict:
    model, enc = _runtime(model_dir, text_model)
    rng = np.random.default_rng(seed)
    hits = {w: 0 for w in weights}
    total = 0
    for _ in range(routes):
        events = random_events(rng, 30)
        stamps, poses, spans = simulate(events, rng)
        ks, kp = keyframe_subsample(stamps, poses)
        # described places: the first keyframe >= 1 s after each manoeuvre, plus distractors
        salient = [(e, spans[i]) for i, e in enumerate(events) if e in SALIENT]
        places, targets = [], []
        for j, (e, (_, b)) in enumerate(salient):
            if e not in MANOEUVRES or stamps[min(b, len(stamps) - 1)] < model.features.window_s:
                continue
            t_place = stamps[min(b, len(stamps) - 1)] + 1.0
            k = int(np.searchsorted(ks, t_place))
            if k >= len(ks) or any(p == k for p, _ in places):
                continue
            places.append((k, str(rng.choice(DESCRIPTIONS))))
            prev = [x for x, _ in salient[max(0, j - 1) : j + 1]]
            targets.append((len(places) - 1, tuple(prev[-int(rng.integers(1, 3)) :])))
        for k in rng.choice(len(ks), size=10, replace=False):
            if ks[k] >= model.features.window_s and all(p != k for p, _ in places):
                places.append((int(k), str(rng.choice(DESCRIPTIONS))))
        descs = enc.encode([d for _, d in places])
        ends = [float(ks[k]) for k, _ in places]
        pose_emb = model.encode_poses(model.window_features(ks, kp, ends))
        for pi, described in targets:
            query = f"{caption_for(described, rng, 'place')} near {places[pi][1]}"
            t_emb = enc.encode([query])
            retrieval_score = descs @ t_emb[0]
            pose_score = pose_emb @ model.project_text(t_emb)[0]
            for w in weights:
                s = (1 - w) * retrieval_score + w * pose_score
                hits[w] += int(np.argmax(s) == pi)
            total += 1
    return {
        "queries": total,
        "routes": routes,
        **{f"top1_w{w}": hits[w] / max(1, total) for w in weights},
        "descriptions": len(DESCRIPTIONS),
    }
