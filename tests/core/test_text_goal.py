"""Goal decision mechanics (synthetic scores) and the command file reader."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lavpr_ros.core.text_calibration import parse_places, read_commands
from lavpr_ros.core.text_goal import GoalPolicy, decide_goal, same_place_within


def test_low_best_score_is_refused_with_the_reason() -> None:
    d = decide_goal([0.359, 0.2], GoalPolicy(0.5, 0.0), labels=["kitchen?", "b"])
    assert not d.accept and "min_score" in d.reason and "kitchen?" in d.reason


def test_near_tie_between_different_places_is_ambiguous() -> None:
    d = decide_goal([0.359, 0.358, 0.1], GoalPolicy(0.3, 0.01))
    assert not d.accept and d.rival == 1 and "ambiguous" in d.reason
    assert d.margin == pytest.approx(0.001)


def test_neighbours_of_the_best_place_are_not_rivals() -> None:
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [50.0, 0, 0]])
    same = same_place_within(pos, 2.0, [True, True, True])
    d = decide_goal([0.70, 0.699, 0.5], GoalPolicy(0.5, 0.05), same)
    assert d.accept and d.rival == 2 and d.margin == pytest.approx(0.2)
    # Without a pose a place is always a different place.
    unknown = same_place_within(pos, 2.0, [True, False, True])
    assert not decide_goal([0.70, 0.699, 0.5], GoalPolicy(0.5, 0.05), unknown).accept


def test_single_place_has_no_rival() -> None:
    d = decide_goal([0.9], GoalPolicy(0.5, 0.1))
    assert d.accept and d.rival is None and math.isinf(d.margin)


def test_bad_policy_and_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="min_margin"):
        GoalPolicy(0.5, -0.1)
    with pytest.raises(ValueError, match="at least one"):
        decide_goal([], GoalPolicy())


def test_command_file_errors_name_the_line(tmp_path) -> None:
    assert parse_places("3-5;9") == {3, 4, 5, 9}
    bad = tmp_path / "c.csv"
    bad.write_text("command,kind,places\nfire extinguisher,in_map,\n")
    with pytest.raises(ValueError, match=r"c.csv:2: an in_map command needs its places"):
        read_commands(bad)
    bad.write_text("command,kind,places\nkitchen,elsewhere,\n")
    with pytest.raises(ValueError, match=r":2: kind 'elsewhere'"):
        read_commands(bad)
