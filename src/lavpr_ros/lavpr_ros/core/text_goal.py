"""When a text command may become a navigation goal: score and ambiguity checks.

A command for a place that is not in the map ("kitchen") still has a best match; its score is
low and, more tellingly, several unrelated places score almost the same. Neighbouring keyframes
of one place share their description, so the ambiguity check compares the best place with the
best *distinct* place (not the same place by ``same_place``), not with the plain runner-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Defaults calibrated on Corridor (docs/text_goals.md, `lavpr text calibrate`).
DEFAULT_MIN_SCORE = 0.53
DEFAULT_MIN_MARGIN = 0.005

SamePlace = Callable[[int, int], bool]


@dataclass(frozen=True)
class GoalPolicy:
    """``min_score``: cosine score the best place needs; ``min_margin``: how much it must beat
    the best distinct place by (0 = no ambiguity check)."""

    min_score: float = DEFAULT_MIN_SCORE
    min_margin: float = DEFAULT_MIN_MARGIN

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [-1, 1], got {self.min_score}")
        if not 0.0 <= self.min_margin <= 2.0:
            raise ValueError(f"min_margin must be in [0, 2], got {self.min_margin}")


@dataclass(frozen=True)
class GoalDecision:
    accept: bool
    best: int  # index into the scored list
    rival: int | None  # index of the best distinct place, None when every place is the same
    margin: float  # best score - rival score (inf without a rival)
    reason: str  # why not (empty when accepted)


def decide_goal(
    scores: Sequence[float],
    policy: GoalPolicy,
    same_place: SamePlace | None = None,
    labels: Sequence[str] | None = None,
) -> GoalDecision:
    """Decide on ``scores`` (one per candidate place, any order). ``same_place(i, j)`` says
    whether candidates i and j are the same place (default: only i == j); ``labels`` name the
    candidates in the reason."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError("decide_goal needs at least one score")
    order = np.argsort(-s, kind="stable").tolist()
    best = order[0]
    same = same_place or (lambda i, j: i == j)
    rival = next((j for j in order[1:] if not same(best, j)), None)
    margin = float(s[best] - s[rival]) if rival is not None else float("inf")

    def name(i: int) -> str:
        return labels[i] if labels is not None else f"#{i}"

    if s[best] < policy.min_score:
        reason = (
            f"best place {name(best)} scores {s[best]:.3f} < min_score {policy.min_score:.3f}: "
            "no place in the map fits the command"
        )
        return GoalDecision(False, best, rival, margin, reason)
    if rival is not None and margin < policy.min_margin:
        reason = (
            f"ambiguous: best place {name(best)} ({s[best]:.3f}) and a different place "
            f"{name(rival)} ({s[rival]:.3f}) differ by {margin:.3f} < min_margin "
            f"{policy.min_margin:.3f}"
        )
        return GoalDecision(False, best, rival, margin, reason)
    return GoalDecision(True, best, rival, margin, "")


def same_place_within(positions: np.ndarray, radius: float, known: Sequence[bool]) -> SamePlace:
    """Same place = both positions known and at most ``radius`` apart (metres for poses)."""
    pos = np.asarray(positions, dtype=np.float64)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")

    def same(i: int, j: int) -> bool:
        if i == j:
            return True
        if not (known[i] and known[j]):
            return False
        return bool(np.linalg.norm(pos[i] - pos[j]) <= radius)

    return same
