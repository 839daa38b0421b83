"""README.md stays true: the test command is what CI runs, every parameter is documented."""

from __future__ import annotations

from pathlib import Path

from lavpr_ros.nodes import geo_localizer, place_map, text_nav, vpr_encoder
from lavpr_ros.tools import sequence_player

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README.split("## Contents")[0]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci.splitlines()[-1]


def test_every_parameter_is_in_the_readme() -> None:
    params = (
        vpr_encoder.PARAMS
        + place_map.PARAMS
        + place_map.loop_closure_params()
        + text_nav.PARAMS
        + geo_localizer.PARAMS
        + sequence_player.PARAMS
    )
    missing = [p.name for p in params if f"`{p.name}`" not in README]
    assert not missing, f"undocumented parameters: {missing} (python scripts/param_tables.py)"


def test_no_placeholder_left() -> None:
    assert "RESULTS" not in README.replace("Results", "") and "-SECTION" not in README
