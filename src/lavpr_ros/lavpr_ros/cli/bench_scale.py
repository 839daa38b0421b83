"""``lavpr bench scale``: city-scale maps built from real image descriptors, measured.

Descriptor sets: Nordland (summer, winter) and Corridor (ref, query) frames, each augmented
(random crop 70-100 % resized back, brightness/contrast/gamma, sensor noise) and encoded with the
chosen encoder. Encoding 1M images with MobileNetV2 is ~6 h on 2 cores, so ``--real`` images are
encoded and the rest of the map is made in descriptor space: x = b_i + s (b_j - b_k), s ~ U(0.3,
0.7), renormalised - new points in the span, and with the covariance structure, of real
descriptors (not isotropic noise, on which IVF-PQ looks far worse than on real data).
Everything generated is cached under ``.cache/scale`` (git-ignored).

Per size: the auto-chosen index (recorded in the map manifest), recall@1/5/10 of search against
exact search over the same stored rows, search latency p50/p95, map save/load time and the RSS
of a fresh process that loads the map and searches. With ``--nordland-demo``: the Nordland
winter-vs-summer loop-closure evaluation on the Nordland map alone and embedded in the largest
map as distractors (sequence matching over shortlists), precision/recall and per-frame p50/p95.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

CACHE = Path(".cache") / "scale"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", help="1M-place maps from real descriptors: recall, memory, load")
    p.add_argument("--sizes", default="10000,100000,1000000", help="map sizes")
    p.add_argument(
        "--encoder",
        default=None,
        help="encoder spec (default: vpr_encoder's encoder in config/lavpr.yaml)",
    )
    p.add_argument("--real", type=int, default=3000, help="augmented real images to encode")
    p.add_argument("--queries", type=int, default=300, help="held-out augmented query images")
    p.add_argument(
        "--storage",
        default="float16",
        choices=("float16", "float32"),
        help="descriptor storage of the maps",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="also evaluate the demo bag (lavpr demo's Nordland segment, default configuration) "
        "alone and embedded after the largest map's places as distractors",
    )
    p.add_argument(
        "--json", type=Path, default=Path("results/bench-scale.json"), help="results JSON"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the augmentation and mixing")
    p.add_argument(
        "--distractors",
        choices=("mixtures", "routes"),
        default="mixtures",
        help="how the map beyond the encoded images is made: i.i.d. mixtures of encoded rows, or "
        "route-ordered runs of 1000 mixtures whose neighbouring ids are neighbouring places",
    )
    p.set_defaults(func=run_scale)


# Nordland frames of the demo segment (lavpr demo: 1000-1299) and a margin stay out of the
# descriptor pool, so the maps' places are other places than the demo's route.
DEMO_START, DEMO_COUNT, DEMO_MARGIN = 1000, 300, 100


def _image_paths() -> list[Path]:
    from ..core.datasets import corridor, nordland

    nl, co = nordland(), corridor()
    lo, hi = DEMO_START - DEMO_MARGIN, DEMO_START + DEMO_COUNT + DEMO_MARGIN
    keep = [i for i in range(len(nl.ref_paths)) if not lo <= i < hi]
    return [
        *(nl.ref_paths[i] for i in keep),
        *(nl.query_paths[i] for i in keep),
        *co.ref_paths,
        *co.query_paths,
    ]


def augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (70-100 % per side, resized back) and photometric change of one frame."""
    from PIL import Image

    h, w = rgb.shape[:2]
    ch, cw = (max(8, int(s * rng.uniform(0.7, 1.0))) for s in (h, w))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    img = Image.fromarray(rgb[y : y + ch, x : x + cw]).resize((w, h), Image.BILINEAR)
    f = np.asarray(img, dtype=np.float32) / 255.0
    f = f ** rng.uniform(0.7, 1.4)  # gamma
    f = (f - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)  # contrast, brightness
    f += rng.normal(0.0, rng.uniform(0.0, 0.03), f.shape)  # sensor noise
    return (np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_augmented(encoder: Any, paths: list[Path], n: int, seed: int, desc: str) -> np.ndarray:
    from ..core.images import load_image

    rng = np.random.default_rng(seed)
    pick = _pick(rng, len(paths), n)
    out = np.zeros((n, encoder.dim), dtype=np.float32)
    for a in tqdm(range(0, n, 32), desc=desc, unit="batch", file=sys.stderr):
        batch = [augment(load_image(paths[i]), rng) for i in pick[a : a + 32]]
        out[a : a + len(batch)] = encoder.encode(batch)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _pick(rng: np.random.Generator, n_paths: int, n: int) -> np.ndarray:
    """Which images ``encode_augmented`` encodes (first draw of its generator)."""
    return rng.choice(n_paths, n, replace=n > n_paths)


def route_order(n_paths: int, n: int, seed: int) -> np.ndarray:
    """Order of the rows ``encode_augmented(..., n, seed)`` returns that follows the routes
    (``_image_paths`` lists Nordland summer, winter, Corridor ref, query, each in route order)."""
    return np.argsort(_pick(np.random.default_rng(seed), n_paths, n), kind="stable")


def expand_routes(base: np.ndarray, n: int, seed: int, run: int = 1000) -> np.ndarray:
    """Like :func:`expand`, but after the real rows the map is runs of ``run`` places that follow
    the route order of ``base`` (rows given in route order): place t of a run mixes rows p+t,
    j+t, k+t with one weight, so neighbouring ids are neighbouring places, as in a real map
    (i.i.d. mixtures make every id's neighbours unrelated places)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float16)
    m = min(n, len(base))
    out[:m] = base[:m]
    t = np.arange(run)
    for a in tqdm(range(m, n, run), desc="expand routes", file=sys.stderr, mininterval=2):
        b = min(n, a + run)
        p, j, k = rng.integers(0, len(base), 3)
        tt = t[: b - a]
        x = base[(p + tt) % len(base)] + rng.uniform(0.3, 0.7) * (
            base[(j + tt) % len(base)] - base[(k + tt) % len(base)]
        )
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def expand(base: np.ndarray, n: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit float16 rows (as a float16 map stores them): the real ``base`` rows first, then
    descriptor-space mixtures of them."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float16)
    m = min(n, len(base))
    out[:m] = base[:m]
    for a in tqdm(range(m, n, chunk), desc="expand", unit="chunk", file=sys.stderr):
        b = min(n, a + chunk)
        i, j, k = (rng.integers(0, len(base), b - a) for _ in range(3))
        s = rng.uniform(0.3, 0.7, (b - a, 1)).astype(np.float32)
        x = base[i] + s * (base[j] - base[k])
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _cached(name: str, make) -> np.ndarray:
    path = CACHE / f"{name}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")  # maps of 1M rows: read chunk by chunk
    arr = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return arr


def _forget_cached(name: str) -> None:
    """Drop a cache file's pages from the page cache: the bench reads its 13 GB source rows to
    build the map, and they push the map file's own pages out (the timed runs then read rows
    from disk). Measured: demo p95 33.6 -> 32.5 ms; 28.2-31.6 ms in a fresh `lavpr bag eval`
    on a quiet machine."""
    path = CACHE / f"{name}.npy"
    if path.is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) exact top-k ids, chunked over the map."""
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for a in range(0, len(x), 131_072):
        s = q @ np.asarray(x[a : a + 131_072], dtype=np.float32).T
        cs = np.concatenate((best_s, s), axis=1)
        ci = np.concatenate((best_i, np.arange(a, a + s.shape[1])[None].repeat(len(q), 0)), axis=1)
        top = np.argsort(-cs, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cs, top, 1), np.take_along_axis(ci, top, 1)
    return best_i


def _pcts(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95))}


def measure_loaded(path: Path, queries: np.ndarray, k: int = 10) -> dict[str, Any]:
    """In a fresh process: load time, search latency, ids found and the process's peak RSS."""
    qfile = path.parent / (path.name + ".queries.npy")
    np.save(qfile, queries)
    code = (
        "import json,resource,sys,time,numpy as np\n"
        "from lavpr_ros.core.place_map import PlaceMap\n"
        "t=time.perf_counter(); m=PlaceMap.load(sys.argv[1]); load=time.perf_counter()-t\n"
        "q=np.load(sys.argv[2]); ids=[]; ms=[]\n"
        "for v in q:\n"
        "    t=time.perf_counter(); r=m.search(v,TOPK); ms.append((time.perf_counter()-t)*1e3)\n"
        "    ids.append([i for i,_ in r])\n"
        "st=open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "rss=int(st.split()[0])/1024\n"
        "print(json.dumps({'load_s':load,'ms':ms,'ids':ids,'peak_rss_mb':rss,"
        "'index_type':m.index_type,'reason':m.index_reason,'file_backed':m.store.file_backed}))\n"
    ).replace("TOPK", str(k))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(qfile)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    qfile.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def _map_dir(n: int, args: argparse.Namespace) -> Path:
    return CACHE / (f"map-{n}" + ("-routes" if args.distractors == "routes" else ""))


def bench_size(n: int, pool: np.ndarray, queries: np.ndarray, args: argparse.Namespace):
    from ..core.place_map import PlaceMap

    tag = f"{pool.shape[1]}d-{len(pool)}real-{n}"
    if args.distractors == "routes":
        tag += "-routes"
        order = route_order(len(_image_paths()), len(pool), args.seed)
        x = _cached(f"map-{tag}", lambda: expand_routes(pool[order], n, args.seed + n))
    else:
        x = _cached(f"map-{tag}", lambda: expand(pool, n, args.seed + n))
    truth = _cached(f"truth-{tag}-{len(queries)}q", lambda: _exact_topk(x, queries, 10))
    pm = PlaceMap(x.shape[1], args.model_id, "auto", storage=args.storage)
    t = time.perf_counter()
    for a in tqdm(range(0, n, 100_000), desc=f"build {n}", file=sys.stderr):
        b = min(n, a + 100_000)  # chunks: an online map crosses the auto switch the same way
        # Stamped 0..n/1000 s: before the demo bag (from 1000 s), so it can be embedded.
        pm.add_batch(np.asarray(x[a:b], dtype=np.float32), np.arange(a, b) / 1000.0)
    build_s = time.perf_counter() - t
    path = _map_dir(n, args)
    t = time.perf_counter()
    pm.save(path)
    save_s = time.perf_counter() - t
    del pm
    os.sync()  # the 6.7 GB just written goes to disk now, not during the timed runs below
    _forget_cached(f"map-{tag}")  # the source rows' 13 GB of page cache are not the robot's
    r = measure_loaded(path, queries)
    got = r["ids"]
    pairs = list(zip(got, truth.tolist(), strict=True))
    rec = {
        f"recall@{k}": float(np.mean([len(set(g[:k]) & set(t[:k])) / k for g, t in pairs]))
        for k in (1, 5, 10)
    }
    return {
        "places": n,
        "dim": int(x.shape[1]),
        "index_type": r["index_type"],
        "index_reason": r["reason"],
        "storage": args.storage,
        "file_backed": r["file_backed"],
        **rec,
        "search": _pcts(r["ms"]),
        "build_s": build_s,
        "save_s": save_s,
        "load_s": r["load_s"],
        "peak_rss_mb_loaded": r["peak_rss_mb"],
        "map_dir_mb": sum(f.stat().st_size for f in path.iterdir()) / 2**20,
    }


def demo_embedded(big: Path, encoder_spec: str, out: Path) -> dict[str, Any]:
    """The demo bag with the default configuration (``lavpr bag eval``): alone, and starting
    from the big map's places as distractors (its route appended after them)."""
    from ..bags.evaluate import evaluate_bag
    from ..bags.writer import dataset_bag_frames, write_bag, write_sidecar

    bag = out / f"nordland_{DEMO_START}_{DEMO_COUNT}"
    if not (bag / "metadata.yaml").is_file():  # as lavpr demo builds it
        frames = dataset_bag_frames("nordland", None, DEMO_START, DEMO_COUNT, 1.0, 2.0)
        write_bag(frames, bag, overwrite=True, progress=True)
        meta = {"source": "nordland", "start": DEMO_START, "count": DEMO_COUNT, "spacing_m": 2.0}
        write_sidecar(bag, frames, 3.0, meta)
    rows: dict[str, Any] = {}
    for name, prior in (("alone", None), ("embedded", big)):
        t0 = time.perf_counter()
        res = evaluate_bag(
            bag, encoder=encoder_spec, progress=True, log=lambda s: None, distractor_map=prior
        )
        m = res.metrics
        rows[name] = {
            "places_before": m["distractor_places"],
            "loop_closures": m["loop_closures"],
            "precision": m["precision"],
            "recall": m["recall"],
            "auc_pr": m["auc_pr"],
            "recall_at_100p": m["recall_at_100p"],
            "search_and_sequence_ms": m["latency_ms"]["detect"],
            "wall_s": time.perf_counter() - t0,
            "vm_hwm_mb": _status_mb("VmHWM"),
        }
    return rows


def demo_in_fresh_process(big: Path, encoder_spec: str, out: Path) -> dict[str, Any]:
    """:func:`demo_embedded` in a fresh process, as a robot runs it: this one holds the map's
    13 GB of source rows (a memory map of the cache), whose pages pushed the map file's out of
    the page cache (per-frame p95 39 ms in-process vs 31-35 ms in a fresh one, measured)."""
    code = (
        "import json,sys\n"
        "from pathlib import Path\n"
        "from lavpr_ros.cli.bench_scale import demo_embedded\n"
        "r=demo_embedded(Path(sys.argv[1]),sys.argv[2],Path(sys.argv[3]))\n"
        "print(json.dumps(r))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    run = subprocess.run(
        [sys.executable, "-c", code, str(big), encoder_spec, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=True,
    )  # stderr passes through: the evaluation's progress bars
    return json.loads(run.stdout.strip().splitlines()[-1])


def _status_mb(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(text.split(key + ":")[1].split()[0]) / 1024


def run_scale(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..core.encoders import create_encoder

    console = Console()
    from ..bags.evaluate import config_encoder

    args.encoder = args.encoder or config_encoder(None)  # the default configuration's encoder
    encoder = create_encoder(args.encoder)
    args.model_id = encoder.model_id  # maps are built for this encoder
    paths = _image_paths()
    tag = f"{encoder.model_id}-{args.seed}-nodemo"  # pools without the demo segment
    pool = _cached(
        f"pool-{tag}-{args.real}",
        lambda: encode_augmented(encoder, paths, args.real, args.seed, "encode map images"),
    )
    queries = _cached(
        f"queries-{tag}-{args.queries}",
        lambda: encode_augmented(encoder, paths, args.queries, args.seed + 1, "encode queries"),
    )
    results: dict[str, Any] = {
        "encoder": encoder.model_id,
        "real_images_encoded": args.real,
        "distractors": args.distractors,
        "queries": args.queries,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "sizes": [],
    }
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for n in sizes:
        row = bench_size(n, pool, queries, args)
        console.print(row)
        results["sizes"].append(row)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.demo:
        results["demo"] = demo_in_fresh_process(_map_dir(max(sizes), args), args.encoder, CACHE)
        console.print(results["demo"])
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for n in sizes[:-1]:
        shutil.rmtree(_map_dir(n, args), ignore_errors=True)
    return 0
