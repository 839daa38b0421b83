"""Print docs/reference.md's parameter tables from the nodes' declared parameters (keeps the docs
true); the live column marks parameters a running node applies (the others are read-only)."""

from lavpr_ros.nodes import (
    geo_localizer,
    place_map,
    pose_graph,
    sequence_player,
    text_nav,
    vpr_encoder,
)

TABLES = {
    "vpr_encoder": vpr_encoder.PARAMS,
    "place_map": place_map.all_params(),
    "text_nav": text_nav.PARAMS,
    "geo_localizer": geo_localizer.PARAMS,
    "pose_graph": pose_graph.PARAMS,
    "sequence_player": sequence_player.PARAMS,
}

for node, params in TABLES.items():
    print(f"\n**{node}** parameters\n")
    print("| parameter | default | live | meaning |")
    print("|---|---|---|---|")
    for p in params:
        default = repr(p.default).replace("|", "\\|")
        live = "live" if p.live else ""
        print(f"| `{p.name}` | `{default}` | {live} | {p.description} |")
