"""``lavpr geo``: ask a GLOBE server about one image; country/city/distance accuracy on a CSV."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any


def _client(args: argparse.Namespace):
    from lavpr_ros.geo_client import GeoClient

    return GeoClient(
        base_url=args.base_url,
        model=args.model,
        timeout_s=args.timeout,
        max_retries=args.retries,
        backoff_s=args.backoff,
        max_tokens=args.max_tokens,
    )


def _jpeg(path: Path, args: argparse.Namespace) -> bytes:
    from lavpr_ros.core.images import load_image
    from lavpr_ros.geo_client import encode_jpeg

    return encode_jpeg(load_image(path), args.max_image_side, args.jpeg_quality)


def _nan_to_none(v: float) -> float | None:
    return None if not math.isfinite(v) else v


def _ask(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        answer, reply = client.localize(_jpeg(Path(args.image), args))
    finally:
        client.close()
    out = {
        "country": answer.country,
        "city": answer.city,
        "latitude": _nan_to_none(answer.latitude),
        "longitude": _nan_to_none(answer.longitude),
        "confidence": _nan_to_none(answer.confidence),
        "model": reply.model,
        "latency_ms": round(reply.latency_ms, 1),
        "notes": answer.notes,
        "reasoning": answer.reasoning,
    }
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lavpr_ros.core.geo import GeoAnswer, GeoParseError, read_ground_truth, score_geo
    from lavpr_ros.geo_client import GeoServerError

    truths = read_ground_truth(args.csv, args.images)
    if args.limit > 0:
        truths = truths[: args.limit]
    client = _client(args)
    answers: list[GeoAnswer | None] = []
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for gt in tqdm(truths, desc="geo eval", unit="img", disable=args.no_progress):
            row: dict[str, Any] = {"image": str(gt.image), "country": gt.country, "city": gt.city}
            try:
                answer, reply = client.localize(_jpeg(gt.image, args))
            except (GeoServerError, GeoParseError) as exc:
                answers.append(None)
                row["error"] = str(exc)
            else:
                answers.append(answer)
                row.update(
                    pred_country=answer.country,
                    pred_city=answer.city,
                    pred_latitude=_nan_to_none(answer.latitude),
                    pred_longitude=_nan_to_none(answer.longitude),
                    latency_ms=round(reply.latency_ms, 1),
                )
            rows.append(row)
    finally:
        client.close()
    metrics = score_geo(truths, answers)
    metrics.update(
        model=client.model,
        base_url=client.base_url,
        csv=str(Path(args.csv).resolve()),
        seconds=round(time.perf_counter() - t0, 2),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"metrics": metrics, "predictions": rows}, ensure_ascii=False, indent=2)
    )
    for k, v in metrics.items():
        if isinstance(v, float):
            v = f"{v:.3f}"
        print(f"{k:28s} {'-' if v is None else v}")
    print(f"report: {out}")
    return 0


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", default="", help="server URL incl. /v1 ($LAVPR_GEO_BASE_URL)")
    p.add_argument("--model", default="", help="served model name ($LAVPR_GEO_MODEL; empty = ask)")
    p.add_argument("--timeout", type=float, default=60.0, help="request timeout [s]")
    p.add_argument("--retries", type=int, default=2, help="retries on timeout/429/5xx")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay [s], doubling")
    p.add_argument("--max-tokens", type=int, default=1024, help="completion token limit")
    p.add_argument("--max-image-side", type=int, default=1024, help="downscale to this [px]")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality (1-100)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("geo", help="coarse geo-localization with a GLOBE (vLLM) server")
    gsub = p.add_subparsers(dest="geo_command", required=True)

    a = gsub.add_parser("ask", help="country/city/coordinates of one image (JSON)")
    a.add_argument("image", help="image file")
    _server_args(a)
    a.set_defaults(func=_ask)

    e = gsub.add_parser(
        "eval",
        help="country/city accuracy and distance accuracy on an image folder + ground-truth CSV",
        description="CSV columns (header names, case-insensitive): an image column (IMG_ID, "
        "image, image_path, img_path, file, filename, path or id; relative to --images, .jpg "
        "added when there is no suffix) and country/city and/or LAT/LON (latitude/longitude). "
        "Im2GPS3k (IMG_ID,LAT,LON,...) and MP16-Reason (IMG_ID/image path, country, city, "
        "LAT/LON) CSVs work as they are.",
    )
    e.add_argument("--images", required=True, help="image folder")
    e.add_argument("--csv", required=True, help="ground-truth CSV")
    e.add_argument("--out", default="results/geo-eval.json", help="JSON report")
    e.add_argument("--limit", type=int, default=0, help="first N rows only (0 = all)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    _server_args(e)
    e.set_defaults(func=_eval)
