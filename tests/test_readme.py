"""README.md and docs/ stay true: the test command is what CI runs, every parameter is
documented in docs/reference.md, README.md stays a short front page, and its links resolve."""

from __future__ import annotations

from pathlib import Path

from lavpr_ros.nodes import (
    geo_localizer,
    place_map,
    pose_graph,
    sequence_player,
    text_nav,
    vpr_encoder,
)

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
REFERENCE = (REPO / "docs" / "reference.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README.split("## Contents")[0]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci.splitlines()[-1]


def test_every_parameter_is_in_the_readme() -> None:
    params = (
        vpr_encoder.PARAMS
        + place_map.all_params()
        + pose_graph.PARAMS
        + text_nav.PARAMS
        + geo_localizer.PARAMS
        + sequence_player.PARAMS
    )
    missing = [p.name for p in params if f"`{p.name}`" not in REFERENCE]
    assert not missing, (
        f"parameters missing from docs/reference.md: {missing} (python scripts/param_tables.py)"
    )


def test_readme_is_a_front_page_and_links_resolve() -> None:
    import re

    assert len(README.encode()) < 12_000, "README.md is the front page: move detail into docs/"
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def test_no_placeholder_left() -> None:
    assert "RESULTS" not in README.replace("Results", "") and "-SECTION" not in README
