"""Shared test set-up: an isolated ROS domain per run and process fixtures that never leak."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_ros_domain() -> Iterator[None]:
    """Every test run gets its own ROS_DOMAIN_ID and localhost-only discovery."""
    from lavpr_ros.graph.ros_env import isolated_ros_env

    saved = dict(os.environ)
    os.environ.update(isolated_ros_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def procs() -> Iterator[object]:
    """A ProcessGroup whose processes are stopped after the test, pass or fail."""
    from lavpr_ros.graph.processes import ProcessGroup

    group = ProcessGroup()
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def client() -> Iterator[object]:
    """An rclpy node in the test process (publish, collect, call services), closed after."""
    from lavpr_ros.graph.ros_client import RosClient

    c = RosClient()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets (LAVPR_DATA or ../shared/data); tests needing them skip without."""
    from lavpr_ros.core.data_location import DataNotFoundError
    from lavpr_ros.core.data_location import data_root as _root

    try:
        return _root()
    except DataNotFoundError as exc:
        pytest.skip(str(exc))


MODELS = REPO / "models"


def _model(model_id: str) -> Path:
    """A default model built by `make models`; tests skip without it, unless the suite runs
    with LAVPR_REQUIRE_MODELS=1 (as `make test` does after building them), then they fail."""
    path = MODELS / model_id / "manifest.yaml"
    if not path.is_file():
        msg = f"{path} absent: build it with `make models`"
        if os.environ.get("LAVPR_REQUIRE_MODELS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def text_model() -> Path:
    return _model("minilm-l6-v2")


@pytest.fixture(scope="session")
def image_model() -> Path:
    return _model("mobilenetv2-gem-imagenet")
