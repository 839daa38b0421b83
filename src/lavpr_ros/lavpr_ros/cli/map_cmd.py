"""``lavpr map``: country/city tags of saved maps and the catalog a geo estimate picks from."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _tag(args: argparse.Namespace) -> int:
    from lavpr_ros.core.geo import parse_tags
    from lavpr_ros.core.place_map import PlaceMap

    changes = parse_tags(args.tags)
    m = PlaceMap.load(args.map_dir)
    for k, v in changes.items():
        if v:
            m.tags[k] = v
        else:
            m.tags.pop(k, None)
    m.save(args.map_dir)  # atomic: a crash leaves the old map
    print(f"{Path(args.map_dir)}: tags {json.dumps(m.tags, ensure_ascii=False)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import yaml

    from lavpr_ros.core.place_map import MANIFEST, PlaceMap

    m = PlaceMap.load(args.map_dir)  # verifies files and checksums
    meta = yaml.safe_load((Path(args.map_dir) / MANIFEST).read_text(encoding="utf-8"))
    info = {
        "path": str(Path(args.map_dir).resolve()),
        "places": len(m),
        "described_places": sum(1 for p in m.places if p.description),
        "model_id": m.model_id,
        "dim": m.dim,
        "index_type": m.index_type,
        "frame_id": m.frame_id,
        "tags": m.tags,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created)),
        "updated": time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(float(meta.get("updated", m.created)))
        ),
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    else:
        for k, v in info.items():
            if k == "tags":
                v = ", ".join(f"{a}={b}" for a, b in v.items()) or "(none)"
            print(f"{k:18s} {v}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from lavpr_ros.core.geo import scan_maps, select_map

    entries = scan_maps(args.maps_root)
    choice = None
    if args.country or args.city:
        choice = select_map(entries, args.country, args.city)
    for e in entries:
        mark = "*" if choice is not None and choice.entry.path == e.path else " "
        print(
            f"{mark} {e.path.name:24s} country={e.country or '-':16s} city={e.city or '-':16s} "
            f"places={e.places:<7d} model={e.model_id}"
        )
    if args.country or args.city:
        if choice is None:
            print(f"no map matches country={args.country!r} city={args.city!r}")
            return 1
        print(f"selected: {choice.entry.path} (matched on {choice.level})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="saved place maps: tags (country/city), info, catalog")
    msub = p.add_subparsers(dest="map_command", required=True)

    t = msub.add_parser("tag", help="set tags of a saved map (key=value; key= removes it)")
    t.add_argument("map_dir", help="saved map directory")
    t.add_argument("tags", nargs="+", help="e.g. country=Norway city=Bodø")
    t.set_defaults(func=_tag)

    i = msub.add_parser("info", help="size, model, tags of a saved map (files verified)")
    i.add_argument("map_dir", help="saved map directory")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_info)

    ls = msub.add_parser(
        "list", help="the maps of a maps_root folder and which one an estimate picks"
    )
    ls.add_argument("maps_root", help="folder holding saved maps (sub-folders)")
    ls.add_argument("--country", default="", help="estimate's country (shows the selection)")
    ls.add_argument("--city", default="", help="estimate's city")
    ls.set_defaults(func=_list)
