"""Synthetic pose-text pairs: kinematic unicycle trajectories and captions from their manoeuvres.

A route is a list of events - straights (long 12-20 s / short 3-6 s), turns (left/right 70-110
deg; slight 25-45 deg), stops (3-6 s) and speed changes (x1.6-2.2 / x0.35-0.55) - turned into
commanded speed and yaw rate, smoothed (1 s moving average: finite acceleration), integrated
(x' = v cos yaw, y' = v sin yaw, yaw' = w) and sampled at ``rate_hz``. Left = positive yaw rate
(ROS). A training window is the last ``window_s`` seconds of a route; its caption describes its
last 1-3 *salient* events (every event but short straights and the tail) in templated, varied
wording - imperative ("turn left after the long straight") or as a remembered place ("the place
where we stopped after turning right").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TURNS = ("left", "right", "slight_left", "slight_right")
MANOEUVRES = (*TURNS, "stop", "speed_up", "slow_down")
SALIENT = (*MANOEUVRES, "straight_long")

IMP = {
    "left": ["turn left", "take a left", "make a left turn", "go left", "take the left turn"],
    "right": ["turn right", "take a right", "make a right turn", "go right", "take the right turn"],
    "slight_left": ["bear left", "veer slightly left", "keep slightly left", "take a gentle left"],
    "slight_right": [
        "bear right",
        "veer slightly right",
        "keep slightly right",
        "take a gentle right",
    ],
    "stop": ["stop", "come to a stop", "halt", "wait for a few seconds"],
    "speed_up": ["speed up", "accelerate", "go faster", "pick up speed"],
    "slow_down": ["slow down", "decelerate", "go slower", "reduce speed"],
    "straight_long": [
        "drive along the long straight",
        "go straight for a long while",
        "follow the long straight",
        "continue straight for a long stretch",
    ],
}
PAST = {
    "left": ["turned left", "took a left", "made a left turn", "went left"],
    "right": ["turned right", "took a right", "made a right turn", "went right"],
    "slight_left": ["bore left", "veered slightly left", "took a gentle left"],
    "slight_right": ["bore right", "veered slightly right", "took a gentle right"],
    "stop": ["stopped", "came to a stop", "halted", "waited"],
    "speed_up": ["sped up", "accelerated", "picked up speed"],
    "slow_down": ["slowed down", "decelerated", "reduced speed"],
    "straight_long": [
        "drove along the long straight",
        "went straight for a long while",
        "followed a long straight stretch",
    ],
}
NOUN = {
    "left": ["the left turn", "turning left", "the turn to the left"],
    "right": ["the right turn", "turning right", "the turn to the right"],
    "slight_left": ["the gentle left", "bearing left"],
    "slight_right": ["the gentle right", "bearing right"],
    "stop": ["the stop", "stopping", "the pause"],
    "speed_up": ["speeding up", "accelerating"],
    "slow_down": ["slowing down", "braking"],
    "straight_long": ["the long straight", "a long straight stretch", "the long straight section"],
}
# Scene phrases appended to some captions, so the text head learns to ignore appearance words:
# at run time text_nav passes the whole command ("... where we turned left near the blue door").
SCENE_ADJ = ["red", "blue", "green", "white", "grey", "large", "small", "old", "glass", "wooden"]
SCENE_NOUN = [
    "door",
    "building",
    "wall",
    "gate",
    "sign",
    "tree",
    "bench",
    "fence",
    "window",
    "vending machine",
    "staircase",
    "parked car",
    "lamp post",
    "shelf",
    "poster",
]
SCENE_PREP = ["near", "by", "next to", "at", "close to", "in front of"]
PLACE = [
    "the place where we",
    "the spot where we",
    "where the robot",
    "the point where we",
    "go back to where we",
]


@dataclass
class Clip:
    stamps: np.ndarray  # (T,)
    poses: np.ndarray  # (T, 3) x, y, yaw
    events: list[str]  # all events, in order
    window_events: list[str]  # salient events inside the final window, in order
    described: tuple[str, ...]  # the events the caption describes (suffix of window_events)
    caption: str


def random_events(rng: np.random.Generator, n_manoeuvres: int) -> list[str]:
    ev: list[str] = []
    for _ in range(n_manoeuvres):
        ev.append("straight_long" if rng.random() < 0.4 else "straight_short")
        m = str(rng.choice(MANOEUVRES, p=[0.2, 0.2, 0.1, 0.1, 0.2, 0.1, 0.1]))
        ev.append(m)
    ev.append("tail")
    return ev


def simulate(events: list[str], rng: np.random.Generator, rate_hz: float = 5.0):
    """Commanded (v, w) per event -> smoothed -> integrated. Returns stamps, (T, 3), spans."""
    dt = 1.0 / rate_hz
    cruise = float(rng.uniform(0.6, 1.6))
    v_parts, w_parts, spans = [], [], []
    t = 0
    for e in events:
        if e in ("straight_long", "straight_short", "tail"):
            dur = {"straight_long": (12, 20), "straight_short": (3, 6), "tail": (1, 3)}[e]
            n = int(rng.uniform(*dur) * rate_hz)
            v = np.full(n, cruise)
            w = np.zeros(n)
        elif e in TURNS:
            ang = np.deg2rad(
                rng.uniform(25, 45) if e.startswith("slight") else rng.uniform(70, 110)
            )
            rate = rng.uniform(0.3, 0.6)
            n = max(2, int(ang / rate * rate_hz))
            sign = 1.0 if e.endswith("left") else -1.0
            v = np.full(n, cruise * rng.uniform(0.5, 0.8))
            w = np.full(n, sign * ang / (n * dt))
        elif e == "stop":
            n = int(rng.uniform(3, 6) * rate_hz)
            v = np.zeros(n)
            w = np.zeros(n)
        else:  # speed change: ramp over 3 s, hold 3 s
            f = rng.uniform(1.6, 2.2) if e == "speed_up" else rng.uniform(0.35, 0.55)
            new = float(np.clip(cruise * f, 0.3, 3.0))
            n_r, n_h = int(3 * rate_hz), int(3 * rate_hz)
            v = np.concatenate([np.linspace(cruise, new, n_r), np.full(n_h, new)])
            w = np.zeros(len(v))
            cruise = new
            n = len(v)
        v_parts.append(v)
        w_parts.append(w + rng.normal(0, 0.02, len(w)))
        spans.append((t, t + n))
        t += n
    v = np.concatenate(v_parts) * (1 + rng.normal(0, 0.03, t))
    w = np.concatenate(w_parts)
    k = max(1, int(rate_hz))  # 1 s moving average = finite acceleration
    ker = np.ones(k) / k
    v = np.convolve(np.concatenate([np.full(k, v[0]), v]), ker, "same")[k:]
    w = np.convolve(np.concatenate([np.zeros(k), w]), ker, "same")[k:]
    v = np.maximum(v, 0.0)
    yaw = float(rng.uniform(-np.pi, np.pi)) + np.concatenate([[0.0], np.cumsum(w * dt)[:-1]])
    x = np.concatenate([[0.0], np.cumsum(v * np.cos(yaw) * dt)[:-1]])
    y = np.concatenate([[0.0], np.cumsum(v * np.sin(yaw) * dt)[:-1]])
    stamps = np.arange(t) * dt
    return stamps, np.stack([x, y, np.arctan2(np.sin(yaw), np.cos(yaw))], axis=1), spans


def _past(rng, e):
    return str(rng.choice(PAST[e]))


def caption_for(described: tuple[str, ...], rng: np.random.Generator, style: str = "any") -> str:
    """Templated caption of 1-3 events (oldest first): ``imperative``, remembered ``place`` or
    ``any`` (45 % imperative)."""
    d = list(described)
    imperative = rng.random() < 0.45 if style == "any" else style == "imperative"
    if imperative:
        phrases = [str(rng.choice(IMP[e])) for e in d]
        if len(d) >= 2 and rng.random() < 0.4:
            head = ", then ".join(phrases[:-2]) + (", then " if len(d) > 2 else "")
            text = head + f"{phrases[-1]} after {rng.choice(NOUN[d[-2]])}"
        else:
            joiner = str(rng.choice([", then ", " and then ", ", after that ", " and "]))
            text = joiner.join(phrases)
            if len(d) >= 2 and rng.random() < 0.3:
                text = "first " + text
        if rng.random() < 0.2:
            text = str(rng.choice(["please ", "now "])) + text
    else:  # a remembered place
        lead = str(rng.choice(PLACE))
        if len(d) >= 2 and rng.random() < 0.5:
            earlier = " and ".join(str(rng.choice(NOUN[e])) for e in d[:-1])
            text = f"{lead} {_past(rng, d[-1])} after {earlier}"
        else:
            text = f"{lead} " + ", then ".join(_past(rng, e) for e in d)
    return text


def scene_phrase(rng: np.random.Generator) -> str:
    return f"the {rng.choice(SCENE_ADJ)} {rng.choice(SCENE_NOUN)}"


def with_scene(caption: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.7:
        return f"{caption} {rng.choice(SCENE_PREP)} {scene_phrase(rng)}"
    return f"{rng.choice(SCENE_PREP)} {scene_phrase(rng)}, {caption}"


def make_clip(
    rng: np.random.Generator,
    window_s: float = 40.0,
    rate_hz: float = 5.0,
    scene_prob: float = 0.4,
    crop_prob: float = 0.2,
) -> Clip:
    """One route whose final ``window_s`` seconds hold at least one described event. With
    ``crop_prob`` the route starts inside the window (a place soon after the robot started: the
    features mark the missing history invalid); with ``scene_prob`` the caption also names
    something seen there."""
    while True:
        events = random_events(rng, int(rng.integers(3, 6)))
        stamps, poses, spans = simulate(events, rng, rate_hz)
        start = stamps[-1] - window_s
        if start < 0:
            continue
        inside = [
            e
            for e, (a, b) in zip(events, spans, strict=True)
            if e in SALIENT and stamps[a] >= start - 1.0 and b <= len(stamps)
        ]
        if not inside:
            continue
        k = int(min(len(inside), rng.choice([1, 2, 2, 3])))
        described = tuple(inside[-k:])
        if rng.random() < crop_prob:
            salient = [(e, a) for e, (a, _) in zip(events, spans, strict=True) if e in SALIENT]
            first = stamps[salient[-k][1]]  # start of the oldest described event
            cut = min(max(stamps[-1] - rng.uniform(10.0, window_s), 0.0), first - 0.5)
            if cut > 0:
                keep = stamps >= cut
                stamps, poses = stamps[keep] - stamps[keep][0], poses[keep]
                inside = [e for e, a in salient if a / rate_hz >= cut - 1.0]
        caption = caption_for(described, rng)
        if rng.random() < scene_prob:
            caption = with_scene(caption, rng)
        return Clip(stamps, poses, events, inside, described, caption)


def compatible(described: tuple[str, ...], window_events: list[str]) -> bool:
    """A caption fits a window when its events are the window's last salient events."""
    n = len(described)
    return n <= len(window_events) and tuple(window_events[-n:]) == tuple(described)


def keyframe_subsample(
    stamps: np.ndarray, poses: np.ndarray, min_dist: float = 0.5, min_rot: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """The poses the runtime's keyframe selector would keep (moved >= min_dist or turned >=
    min_rot since the last kept one; first and last always kept): text_nav sees keyframe paths."""
    keep = [0]
    for i in range(1, len(stamps)):
        j = keep[-1]
        dyaw = abs(np.arctan2(np.sin(poses[i, 2] - poses[j, 2]), np.cos(poses[i, 2] - poses[j, 2])))
        if np.hypot(*(poses[i, :2] - poses[j, :2])) >= min_dist or dyaw >= min_rot:
            keep.append(i)
    if keep[-1] != len(stamps) - 1:
        keep.append(len(stamps) - 1)
    return stamps[keep], poses[keep]
