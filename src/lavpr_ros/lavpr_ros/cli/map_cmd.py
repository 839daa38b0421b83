"""``lavpr map``: tags, info, places and annotations of saved maps, and the catalog a geo
estimate picks from."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any


def _warn_odom(m: Any) -> None:
    """Places with poses in odom: say so (stderr), they are lost at the next restart."""
    warning = m.odom_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


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
    _warn_odom(m)
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
        "pose_frames": m.pose_frames(),
        "tags": m.tags,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created)),
        "updated": time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(float(meta.get("updated", m.created)))
        ),
        "warning": m.odom_warning() or "",
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    else:
        for k, v in info.items():
            if k == "tags":
                v = ", ".join(f"{a}={b}" for a, b in v.items()) or "(none)"
            elif k == "pose_frames":
                v = ", ".join(v) or "(no poses)"
            elif k == "warning":
                continue
            print(f"{k:18s} {v}")
        _warn_odom(m)
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


def _places(args: argparse.Namespace) -> int:
    from lavpr_ros.core.place_map import PlaceMap

    m = PlaceMap.load(args.map_dir)
    rows: list[dict[str, Any]] = []
    for p in m.places:
        pose = None if p.pose is None else [round(float(v), 6) for v in p.pose]
        rows.append(
            {
                "id": p.id,
                "stamp": p.stamp,
                "frame_id": p.frame_id,
                "pose": pose,
                "description": p.description,
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        _warn_odom(m)
        return 0
    w = max([8, *(len(r["frame_id"]) for r in rows)])
    print(
        f"{'id':>6s} {'stamp [s]':>18s} {'frame':{w}s} {'x [m]':>9s} {'y [m]':>9s} "
        f"{'z [m]':>8s}  description"
    )
    for r in rows:
        xyz = (
            "{:9.3f} {:9.3f} {:8.3f}".format(*r["pose"][:3])
            if r["pose"]
            else f"{'-':>9s} {'-':>9s} {'-':>8s}"
        )
        print(f"{r['id']:6d} {r['stamp']:18.6f} {r['frame_id']:{w}s} {xyz}  {r['description']}")
    print(f"{len(rows)} place(s), {sum(1 for r in rows if r['description'])} described")
    _warn_odom(m)
    return 0


def _place_of(image: str, by: str, stamps: Any, tolerance: float) -> int | None:
    """The place an image file name refers to: the last number in its stem is the place id
    (``by=id``) or the image stamp in seconds (``by=stamp``, nearest place within tolerance)."""
    import numpy as np

    stem = Path(image).stem
    nums = re.findall(r"\d+(?:\.\d+)?", stem)
    if not nums:
        return None
    if by == "id":
        pid = int(float(nums[-1]))
        return pid if 0 <= pid < len(stamps) else None
    if not len(stamps):
        return None
    t = float(nums[-1])
    if t > 1e14:  # nanoseconds
        t *= 1e-9
    j = int(np.argmin(np.abs(stamps - t)))
    return j if abs(float(stamps[j]) - t) <= tolerance else None


def _annotate(args: argparse.Namespace) -> int:
    from lavpr_ros.core.descriptions import read_descriptions
    from lavpr_ros.core.place_map import PlaceMap

    table = read_descriptions(args.csv)
    if not table:
        raise ValueError(f"{args.csv}: no descriptions")
    m = PlaceMap.load(args.map_dir)
    stamps = m.stamps
    matched, unknown = {}, []
    for image, text in table.items():
        pid = _place_of(image, args.by, stamps, args.tolerance)
        if pid is None:
            unknown.append(image)
        elif pid in matched and matched[pid][1] != text:
            raise ValueError(
                f"{args.csv}: '{matched[pid][0]}' and '{image}' both describe place {pid}"
            )
        else:
            matched[pid] = (image, text)
    if unknown and not args.skip_unknown:
        raise ValueError(
            f"{len(unknown)} row(s) of {args.csv} match no place of {args.map_dir} "
            f"(by {args.by}), e.g. {unknown[:5]}; nothing written (--skip-unknown to go on)"
        )
    changed = sum(1 for pid, (_, text) in matched.items() if m.get(pid).description != text)
    for pid, (_, text) in matched.items():
        m.set_description(pid, text)
    m.save(args.map_dir)  # atomic: a crash leaves the old map
    print(
        f"{Path(args.map_dir)}: {len(matched)} place(s) described from {args.csv} "
        f"({changed} changed, {len(unknown)} row(s) skipped)"
    )
    _warn_odom(m)
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from lavpr_ros.core.place_map import PlaceMap

    t0 = time.perf_counter()
    m = PlaceMap.load(args.map_dir)  # verifies files and checksums
    t1 = time.perf_counter()
    before = m.index_type
    m.reindex()
    t2 = time.perf_counter()
    m.save(args.map_dir)  # atomic: a crash leaves the old map
    t3 = time.perf_counter()
    print(
        f"{Path(args.map_dir)}: {len(m)} places, index {before} -> {m.index_type} "
        f"({m.index_choice_reason()}); load {t1 - t0:.1f} s, rebuild {t2 - t1:.1f} s, "
        f"save {t3 - t2:.1f} s"
    )
    _warn_odom(m)
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

    r = msub.add_parser(
        "reindex",
        help="rebuild a saved map's index from its stored rows (a PCA-PQ index refitted on all "
        "places; auto re-chooses the index for the map's size)",
    )
    r.add_argument("map_dir", help="saved map directory (rewritten atomically)")
    r.set_defaults(func=_reindex)

    pl = msub.add_parser(
        "places", help="ids, stamps, poses, frames and descriptions of a saved map's places"
    )
    pl.add_argument("map_dir", help="saved map directory")
    pl.add_argument("--json", action="store_true", help="print a JSON list")
    pl.set_defaults(func=_places)

    an = msub.add_parser(
        "annotate",
        help="put LaVPR-layout descriptions (image_path,description CSV) onto places",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    an.add_argument("map_dir", help="saved map directory (rewritten atomically)")
    an.add_argument("--csv", type=Path, required=True, help="LaVPR-layout description CSV")
    an.add_argument(
        "--by",
        choices=("id", "stamp"),
        default="id",
        help="how an image names its place: id = the last number of the file name is the place "
        "id (maps built from an image folder: place i = image i); stamp = the file name is the "
        "image stamp (s, or ns for epoch stamps), matched to the nearest place",
    )
    an.add_argument(
        "--tolerance", type=float, default=0.05, help="largest stamp difference for --by stamp [s]"
    )
    an.add_argument(
        "--skip-unknown", action="store_true", help="skip rows matching no place (else: error)"
    )
    an.set_defaults(func=_annotate)

    ls = msub.add_parser(
        "list", help="the maps of a maps_root folder and which one an estimate picks"
    )
    ls.add_argument("maps_root", help="folder holding saved maps (sub-folders)")
    ls.add_argument("--country", default="", help="estimate's country (shows the selection)")
    ls.add_argument("--city", default="", help="estimate's city")
    ls.set_defaults(func=_list)
