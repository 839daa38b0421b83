"""``lavpr data``: where the datasets are, fetching them into the cache, packing a mirror."""

from __future__ import annotations

import argparse
from pathlib import Path


def _where(args: argparse.Namespace) -> int:
    from lavpr_ros.core.data_location import data_root

    print(data_root())
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from lavpr_ros.data_fetch import fetch

    path = fetch(
        args.name,
        mirror=args.mirror,
        url=args.url,
        dest=Path(args.dest) if args.dest else None,
        force=args.force,
        timeout=args.timeout,
    )
    print(f"{args.name}: verified and installed at {path}")
    print(f"use it with: export LAVPR_DATA={path.parent}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from lavpr_ros.core.data_location import dataset_dir
    from lavpr_ros.data_fetch import pack

    source = Path(args.source) if args.source else dataset_dir(args.name)
    out = pack(args.name, source, Path(args.out))
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset location, download and mirror tools")
    dsub = p.add_subparsers(dest="data_command", required=True)

    w = dsub.add_parser("where", help="print the data location (LAVPR_DATA or ../shared/data)")
    w.set_defaults(func=_where)

    f = dsub.add_parser("fetch", help="download a dataset into the cache, verifying its checksum")
    f.add_argument("name", choices=["corridor", "nordland"])
    f.add_argument("--mirror", help="base URL holding NAME.tar.gz (default: $LAVPR_DATA_MIRROR)")
    f.add_argument("--url", help="exact archive URL (tar.* or zip), overrides --mirror")
    f.add_argument("--dest", help="install folder (default: $LAVPR_CACHE/data or ~/.cache/lavpr)")
    f.add_argument("--force", action="store_true", help="download even if a verified copy exists")
    f.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout in seconds")
    f.set_defaults(func=_fetch)

    k = dsub.add_parser("pack", help="write NAME.tar.gz of a verified local copy for a mirror")
    k.add_argument("name", choices=["corridor", "nordland"])
    k.add_argument("--source", help="dataset folder (default: from the data location)")
    k.add_argument("--out", required=True, help="output folder")
    k.set_defaults(func=_pack)
