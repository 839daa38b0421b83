"""config/lavpr.yaml and the nodes' declared parameters stay in step."""

from __future__ import annotations

import pytest

from lavpr_ros.core.loop_closure import LoopClosureConfig
from lavpr_ros.graph.config import dataclass_from_params, node_parameters
from lavpr_ros.graph.description import NODES, default_config_file
from lavpr_ros.nodes import geo_localizer, place_map, pose_graph, text_nav, vpr_encoder

DECLARED = {
    "vpr_encoder": vpr_encoder.PARAMS,
    "place_map": place_map.all_params(),
    "text_nav": text_nav.PARAMS,
    "geo_localizer": geo_localizer.PARAMS,
    "pose_graph": pose_graph.PARAMS + pose_graph.pose_graph_params(),
}


def test_every_node_of_the_graph_has_a_parameter_table() -> None:
    assert {n.name for n in NODES} == set(DECLARED)


@pytest.mark.parametrize("node", sorted(DECLARED))
def test_yaml_holds_exactly_the_declared_parameters(node: str) -> None:
    in_yaml = node_parameters(default_config_file(), node)
    declared = {p.name: p for p in DECLARED[node]}
    assert set(in_yaml) == set(declared)
    for name, value in in_yaml.items():
        default = declared[name].default
        assert type(value) is type(default), f"{node}.{name}: {value!r} vs {default!r}"
    assert all(p.description for p in DECLARED[node])


def test_yaml_loop_closure_section_builds_the_core_config() -> None:
    cfg = dataclass_from_params(
        LoopClosureConfig, node_parameters(default_config_file(), "place_map"), "loop_closure."
    )
    assert cfg == LoopClosureConfig()  # the YAML states the core defaults


def test_yaml_pose_graph_section_builds_the_core_config() -> None:
    from lavpr_ros.bags.pose_graph_eval import pose_graph_config
    from lavpr_ros.core.pose_graph import PoseGraphConfig

    assert pose_graph_config() == PoseGraphConfig()  # the YAML states the core defaults
