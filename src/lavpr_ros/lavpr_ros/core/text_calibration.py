"""Calibrate text_nav's goal thresholds (min_score, min_margin) on a described map.

Two kinds of commands are scored against the map's place descriptions: *in-map* commands name
places of the map (each lists the places that count as correct), *out-of-map* commands name
places that are not there (other rooms, other buildings, vague words). A goal sent for an
out-of-map command is a false goal; an in-map command is right when a goal is sent to one of its
places. The sweep picks the thresholds with the most right in-map goals among those whose
false-goal rate stays at or under a bound.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lavpr_ros.core.text_goal import GoalPolicy, SamePlace, decide_goal

KINDS = ("in_map", "out_of_map")


@dataclass(frozen=True)
class Command:
    text: str
    kind: str
    places: frozenset[int] = field(default_factory=frozenset)  # correct places (in_map)


def parse_places(spec: str) -> frozenset[int]:
    """``"3-7;12"`` -> {3, 4, 5, 6, 7, 12}."""
    out: set[int] = set()
    for part in spec.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if a < 0 or b < a:
            raise ValueError(f"bad place range '{part}'")
        out.update(range(a, b + 1))
    return frozenset(out)


def read_commands(path: str | Path) -> list[Command]:
    """A CSV with header ``command,kind,places`` (kind in_map/out_of_map; places: map indices
    like ``3-7;12``, needed for in_map). Errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"command CSV not found: {p}")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"command", "kind"} <= set(reader.fieldnames):
            raise ValueError(f"{p}: needs a header with columns command,kind[,places]")
        out = []
        for line, row in enumerate(reader, start=2):
            text, kind = (row.get("command") or "").strip(), (row.get("kind") or "").strip()
            if not text:
                raise ValueError(f"{p}:{line}: empty command")
            if kind not in KINDS:
                raise ValueError(f"{p}:{line}: kind '{kind}' is not one of {', '.join(KINDS)}")
            try:
                places = parse_places(row.get("places") or "")
            except ValueError as exc:
                raise ValueError(f"{p}:{line}: {exc}") from None
            if kind == "in_map" and not places:
                raise ValueError(f"{p}:{line}: an in_map command needs its places")
            out.append(Command(text, kind, places))
    return out


def same_place_from_positives(positives: Sequence[set[int]]) -> SamePlace:
    """Map places i and j are the same place when the ground truth counts both as positives of
    one query (e.g. Corridor: ±2 frames)."""
    groups: dict[int, set[int]] = {}
    for pos in positives:
        for i in pos:
            groups.setdefault(i, set()).update(pos)
    return lambda i, j: i == j or j in groups.get(i, ())


@dataclass(frozen=True)
class Outcome:
    """Rates of one policy on one set of commands."""

    false_goal_rate: float  # out-of-map commands that got a goal
    top1_accuracy: float  # in-map commands whose goal went to a right place
    in_map_goal_rate: float  # in-map commands that got any goal
    raw_top1_accuracy: float  # in-map commands whose best place is right (no thresholds)
    n_in_map: int
    n_out_of_map: int


def evaluate(
    scores: np.ndarray, commands: Sequence[Command], policy: GoalPolicy, same: SamePlace
) -> Outcome:
    """``scores[c, j]``: command c against map place j."""
    if scores.shape[0] != len(commands):
        raise ValueError(f"{scores.shape[0]} score rows for {len(commands)} commands")
    false = right = goals = raw = n_in = n_out = 0
    for row, cmd in zip(scores, commands, strict=True):
        d = decide_goal(row, policy, same)
        if cmd.kind == "out_of_map":
            n_out += 1
            false += d.accept
        else:
            n_in += 1
            goals += d.accept
            right += d.accept and d.best in cmd.places
            raw += d.best in cmd.places

    def rate(a: int, n: int) -> float:
        return a / n if n else float("nan")

    return Outcome(
        rate(false, n_out), rate(right, n_in), rate(goals, n_in), rate(raw, n_in), n_in, n_out
    )


@dataclass(frozen=True)
class Sweep:
    min_scores: np.ndarray
    margins: np.ndarray
    false_goal: np.ndarray  # [len(min_scores), len(margins)]
    top1: np.ndarray
    chosen: GoalPolicy


def sweep(
    scores: np.ndarray,
    commands: Sequence[Command],
    same: SamePlace,
    min_scores: np.ndarray,
    margins: np.ndarray,
    max_false_rate: float,
) -> Sweep:
    """Every (min_score, margin) pair; chosen: most right in-map goals with a false-goal rate
    <= ``max_false_rate``; ties go to the lower false-goal rate, then the larger margin (a
    free guard against near-ties), then the lower min_score."""
    if not any(c.kind == "out_of_map" for c in commands) or not any(
        c.kind == "in_map" for c in commands
    ):
        raise ValueError("calibration needs both in_map and out_of_map commands")
    fg = np.zeros((len(min_scores), len(margins)))
    t1 = np.zeros_like(fg)
    for a, ms in enumerate(min_scores):
        for b, mg in enumerate(margins):
            o = evaluate(scores, commands, GoalPolicy(float(ms), float(mg)), same)
            fg[a, b], t1[a, b] = o.false_goal_rate, o.top1_accuracy
    ok = np.argwhere(fg <= max_false_rate + 1e-12)
    if ok.size == 0:
        raise ValueError(
            f"no threshold pair keeps the false-goal rate <= {max_false_rate}: widen the grid"
        )
    a, b = min(ok.tolist(), key=lambda ab: (-t1[ab[0], ab[1]], fg[ab[0], ab[1]], -ab[1], ab[0]))
    chosen = GoalPolicy(round(float(min_scores[a]), 4), round(float(margins[b]), 4))
    return Sweep(min_scores, margins, fg, t1, chosen)
