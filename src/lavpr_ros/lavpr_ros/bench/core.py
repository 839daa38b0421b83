"""``lavpr bench core``: measured costs of the core pieces, each against a naive numpy twin.

Numbers, not claims: encoder throughput, map search latency/recall per index type and size,
sequence matching cost per frame and memory per place, all from one run on this machine.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
DEFAULT_ONNX = Path("models") / "mobilenetv2-gem-imagenet" / "manifest.yaml"
SEQ_LENGTH = 10


def _repo_root() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        if (parent / "src" / "lavpr_ros" / "package.xml").is_file():
            return parent
    return None


_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")


@functools.cache
def _blas_setter() -> Callable[[int], Any] | None:
    """numpy's bundled OpenBLAS thread setter (there is no public numpy API for it)."""
    libdir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(libdir.glob("*openblas*")):
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for sym in _BLAS_SETTERS:
            if hasattr(handle, sym):
                fn = getattr(handle, sym)
                return lambda n, fn=fn: fn(ctypes.c_int(n))
    return None


def _set_threads(n: int) -> dict[str, Any]:
    """Pin faiss (OpenMP) and numpy's OpenBLAS to ``n`` threads (0 = all cores)."""
    import faiss

    n = n if n > 0 else os.cpu_count() or 1
    faiss.omp_set_num_threads(n)
    setter = _blas_setter()
    if setter is not None:
        setter(n)
    return {"faiss": n, "numpy_blas": n if setter is not None else "unchanged"}


def _timeit(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> np.ndarray:
    """Wall times (s) of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def _unit_rows(n: int, dim: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """(n, dim) random unit vectors, generated in chunks to keep the peak memory at ~1 copy."""
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[s : s + len(block)] = block
    return x


def _bench_images(count: int = 32) -> tuple[list[np.ndarray], str]:
    """Real corridor frames when the dataset is present, else random frames of the same size."""
    from lavpr_ros.core.images import load_image

    try:
        from lavpr_ros.core.data_location import dataset_dir

        files = sorted((dataset_dir("corridor") / "ref").glob("*.jpg"))[:count]
        if files:
            return [
                load_image(f) for f in files
            ], f"corridor/ref ({len(files)} real 160x120 frames)"
    except (FileNotFoundError, ImportError):
        pass
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(count)]
    return imgs, f"random 160x120 frames ({count}; corridor dataset not found)"


# --------------------------------------------------------------------------- encoders
def naive_patchnorm(images: list[np.ndarray], enc: Any) -> np.ndarray:
    """Same computation as PatchNormEncoder with a Python loop over patches (the naive twin)."""
    p = enc.patch_size
    rows = []
    for img in images:
        grey = enc._grey(img)  # identical resize path: the twin differs only in the patch loop
        out = np.zeros_like(grey)
        for y in range(0, grey.shape[0], p):
            for x in range(0, grey.shape[1], p):
                patch = grey[y : y + p, x : x + p]
                vals = [float(v) for v in patch.ravel()]
                mean = sum(vals) / len(vals)
                std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
                if std > 1e-3:
                    out[y : y + p, x : x + p] = (patch - mean) / std
        flat = out.ravel()
        norm = math.sqrt(float(flat @ flat))
        # featureless image: the encoder's documented uniform unit vector
        rows.append(flat / norm if norm > 0 else np.full_like(flat, 1 / math.sqrt(flat.size)))
    return np.array(rows, dtype=np.float32)


def build_conv_model(directory: Path, size: int = 224, seed: int = 0) -> Path:
    """A small real conv net (3 Conv+Relu, stride 2, GAP) with random weights, plus manifest."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from lavpr_ros.core.manifest import ModelManifest, sha256_file

    rng = np.random.default_rng(seed)
    chans = [3, 32, 64, 128]
    nodes, inits = [], []
    prev = "images"
    for i in range(3):
        cin, cout = chans[i], chans[i + 1]
        w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) * math.sqrt(2 / (9 * cin))
        b = np.full(cout, 0.05, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(
            helper.make_node(
                "Conv",
                [prev, f"w{i}", f"b{i}"],
                [f"c{i}"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["descriptors"], axis=1))
    graph = helper.make_graph(
        nodes,
        "bench_conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", chans[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, directory / "model.onnx")
    manifest = ModelManifest(
        model_id="bench-conv3-random",
        kind="image",
        file="model.onnx",
        sha256=sha256_file(directory / "model.onnx"),
        output_dim=chans[-1],
        input_size=(size, size),
        description="3 Conv+Relu (stride 2) + GAP with random weights; timing only",
        source="lavpr bench core (onnx.helper)",
        directory=directory,
    )
    return manifest.save(directory)


def bench_encoders(args: argparse.Namespace, console: Console, tmp: Path) -> list[dict]:
    from lavpr_ros.core.encoders import OnnxEncoder
    from lavpr_ros.core.patchnorm import PatchNormEncoder

    images, source = _bench_images(32)
    console.print(f"[bold]Encoders[/] on {source}")
    results = []
    pn = PatchNormEncoder()
    t = _timeit(lambda: pn.encode(images), repeats=5)
    naive_imgs = images[:8]
    tn = _timeit(lambda: naive_patchnorm(naive_imgs, pn), repeats=2)
    diff = float(np.abs(naive_patchnorm(naive_imgs, pn) - pn.encode(naive_imgs)).max())
    ips = len(images) / float(np.median(t))
    naive_ips = len(naive_imgs) / float(np.median(tn))
    results.append(
        {
            "encoder": pn.model_id,
            "provider": pn.provider,
            "batch": len(images),
            "images_per_s": ips,
            "ms_per_batch": float(np.median(t)) * 1e3,
            "naive_images_per_s": naive_ips,
            "speedup_vs_naive": ips / naive_ips,
            "max_abs_diff_vs_naive": diff,
            "images": source,
        }
    )

    model = args.onnx_model
    note = ""
    if model is None:
        root = _repo_root() or Path.cwd()
        for cand in (root / DEFAULT_ONNX, Path.cwd() / DEFAULT_ONNX):
            if cand.is_file():
                model = cand
                break
    if model is None:
        model = build_conv_model(tmp / "bench_conv")
        note = "built a random-weight 3-layer conv model (224x224) since no model was given/found"
        console.print(f"[yellow]{note}[/]")
    enc = OnnxEncoder(model, providers=["CPUExecutionProvider"], intra_op_threads=args.threads)
    batch = images[:16]
    t = _timeit(lambda: enc.encode(batch), repeats=3)
    t1 = _timeit(lambda: enc.encode(batch[:1]), repeats=10)
    results.append(
        {
            "encoder": enc.model_id,
            "provider": enc.provider,
            "batch": len(batch),
            "images_per_s": len(batch) / float(np.median(t)),
            "ms_per_batch": float(np.median(t)) * 1e3,
            "ms_per_image_batch1": float(np.median(t1)) * 1e3,
            "input_size": list(enc.manifest.input_size or []),
            "model": str(model),
            "note": note or "no numpy twin for a CNN: images/s and ms/batch only",
            "images": source,
        }
    )
    table = Table(title="Descriptor throughput (CPU)")
    for col in (
        "encoder",
        "provider",
        "batch",
        "images/s",
        "ms/batch",
        "naive images/s",
        "x naive",
    ):
        table.add_column(col, justify="right" if col != "encoder" else "left")
    for r in results:
        table.add_row(
            r["encoder"],
            r["provider"],
            str(r["batch"]),
            f"{r['images_per_s']:.1f}",
            f"{r['ms_per_batch']:.2f}",
            f"{r['naive_images_per_s']:.1f}" if "naive_images_per_s" in r else "-",
            f"{r['speedup_vs_naive']:.0f}x" if "speedup_vs_naive" in r else "-",
        )
    console.print(table)
    return results


# --------------------------------------------------------------------------- map search
def _nlist_for(n: int) -> int:
    """IVF lists ~ sqrt(N) (power of two, 16..1024): the usual balance of probe vs scan cost."""
    return int(min(1024, max(16, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))))


def _queries_for(n: int) -> int:
    return 200 if n <= 10_000 else 100 if n <= 100_000 else 25


def _make_queries(x: np.ndarray, nq: int, rng: np.random.Generator) -> np.ndarray:
    """Revisits: noisy copies of random map rows (cosine ~0.7 to their source)."""
    src = x[rng.choice(len(x), nq, replace=False)]
    noise = rng.standard_normal(src.shape, dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = src + noise
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _naive_search(x: np.ndarray, q: np.ndarray, k: int = 5) -> np.ndarray:
    return np.argsort(x @ q)[::-1][:k]


def _latency(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[np.ndarray, list]:
    fn(queries[0])
    times, outs = np.empty(len(queries)), []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        outs.append(fn(q))
        times[i] = time.perf_counter() - t0
    return times * 1e3, outs


def _top1(approx: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([bool(a) and a[0] == e[0] for a, e in zip(approx, exact, strict=True)]))


def _recall(approx: list[list[int]], exact: list[list[int]]) -> float:
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx, exact, strict=True))
    return hits / sum(len(e) for e in exact)


def _metadata_bytes_per_place(dim: int, tmp: Path, n: int = 10_000) -> float:
    """Bytes per place of places.sqlite (stamp + pose + empty text) measured on a saved map."""
    from lavpr_ros.core.place_map import PlaceMap

    rng = np.random.default_rng(1)
    m = PlaceMap(dim, "bench")
    poses = np.zeros((n, 7))
    poses[:, :3] = rng.standard_normal((n, 3))
    poses[:, 6] = 1.0
    m.add_batch(_unit_rows(n, dim, rng), np.arange(n, dtype=float), list(poses))
    out = m.save(tmp / "meta_map")
    return (out / "places.sqlite").stat().st_size / n


def _sequence_bench(x: np.ndarray, queries: np.ndarray, frames: int) -> dict | None:
    try:
        from lavpr_ros.core.sequence import SequenceMatcher
    except ImportError:
        return None
    sims_all = [x @ q for q in queries[: frames + SEQ_LENGTH]]
    matcher = SequenceMatcher(length=SEQ_LENGTH)
    for s in sims_all[:SEQ_LENGTH]:  # fill the window untimed
        matcher.update(s)
    t_seq = []
    for s in sims_all[SEQ_LENGTH:]:
        t0 = time.perf_counter()
        matcher.update(s)
        t_seq.append(time.perf_counter() - t0)

    def naive(i: int) -> int:
        # Recompute the whole L x N similarity matrix from descriptors and sum its diagonals.
        window = queries[i - SEQ_LENGTH + 1 : i + 1]
        s = window @ x.T
        score = np.zeros(len(x) - SEQ_LENGTH + 1, dtype=np.float32)
        for t in range(SEQ_LENGTH):
            score += s[t, t : t + len(score)]
        return int(np.argmax(score))

    t_naive = []
    for i in range(SEQ_LENGTH, SEQ_LENGTH + min(frames, 10)):
        t0 = time.perf_counter()
        naive(i)
        t_naive.append(time.perf_counter() - t0)
    ms, naive_ms = float(np.median(t_seq)) * 1e3, float(np.median(t_naive)) * 1e3
    return {
        "size": len(x),
        "length": SEQ_LENGTH,
        "ms_per_frame": ms,
        "p95_ms_per_frame": float(np.percentile(t_seq, 95)) * 1e3,
        "naive_ms_per_frame": naive_ms,
        "speedup_vs_naive": naive_ms / ms,
        "frames": len(t_seq),
    }


def bench_maps(
    args: argparse.Namespace, sizes: list[int], console: Console, tmp: Path
) -> tuple[list[dict], list[dict], list[dict]]:
    import faiss

    from lavpr_ros.core.place_map import PlaceMap

    rng = np.random.default_rng(args.seed)
    dim = args.dim
    search_rows: list[dict] = []
    seq_rows: list[dict] = []
    mem_rows: list[dict] = []
    meta_bpp = _metadata_bytes_per_place(dim, tmp)
    last_build: dict[str, tuple[int, float]] = {}
    steps = len(sizes) * 6
    with tqdm(total=steps, desc="map sizes", unit="step", leave=False) as bar:
        for n in sizes:
            bar.set_postfix_str(f"N={n:,} data")
            x = _unit_rows(n, dim, rng)
            queries = _make_queries(x, _queries_for(n), rng)
            naive_ms, naive_ids = _latency(lambda q, x=x: _naive_search(x, q), queries)
            exact_ids = [list(map(int, ids)) for ids in naive_ids]
            search_rows.append(
                {
                    "size": n,
                    "index": "naive-numpy",
                    "p50_ms": float(np.median(naive_ms)),
                    "p95_ms": float(np.percentile(naive_ms, 95)),
                    "recall_at_5": 1.0,
                    "top1_agreement": 1.0,
                    "queries": len(queries),
                }
            )
            bar.update(1)
            for kind in ("flat", "hnsw", "ivfpq", "pcapq"):
                bar.set_postfix_str(f"N={n:,} {kind}")
                row: dict[str, Any] = {"size": n, "index": kind}
                kw: dict[str, Any] = {}
                if kind == "ivfpq":
                    kw = {"ivf_nlist": _nlist_for(n), "pq_m": 16, "ivf_nprobe": 16}
                    row["nlist"] = kw["ivf_nlist"]
                if kind in last_build:  # extrapolate from the previous size; skip if too slow
                    n0, t0 = last_build[kind]
                    est = t0 * (n / n0) * (math.log(n) / math.log(n0) if kind == "hnsw" else 1.0)
                    if est > args.hnsw_budget_s:
                        row["skipped"] = (
                            f"estimated build {est:.0f} s > budget {args.hnsw_budget_s:.0f} s "
                            "(--hnsw-budget-s)"
                        )
                        search_rows.append(row)
                        bar.update(1)
                        continue
                m = PlaceMap(dim, "bench", kind, **kw)
                _set_threads(0)  # builds use every core; queries are timed with --threads
                t0 = time.perf_counter()
                m.add_batch(x, np.arange(n, dtype=float))
                build = time.perf_counter() - t0
                _set_threads(args.threads)
                if kind != "flat":
                    last_build[kind] = (n, build)
                ms, res = _latency(lambda q, m=m: m.search(q, 5), queries)
                ids = [[i for i, _ in r] for r in res]
                p50 = float(np.median(ms))
                row.update(
                    build_s=build,
                    p50_ms=p50,
                    p95_ms=float(np.percentile(ms, 95)),
                    recall_at_5=_recall(ids, exact_ids),
                    top1_agreement=_top1(ids, exact_ids),
                    queries=len(queries),
                    speedup_vs_naive=float(np.median(naive_ms)) / p50,
                    trained=bool(m.index.is_trained and m.index.ntotal == n),
                )
                if kind in ("ivfpq", "pcapq") and not row["trained"]:
                    row["note"] = f"untrained (<{m.ivf_train_size}): exact"
                search_rows.append(row)
                if m.index.ntotal:
                    index_bpp = faiss.serialize_index(m.index).nbytes / n
                    mem_rows.append(
                        {
                            "size": n,
                            "index": kind,
                            "index_bytes_per_place": index_bpp,
                            "descriptor_bytes_per_place": 4.0 * dim,
                            "metadata_bytes_per_place": meta_bpp,
                            "total_bytes_per_place": index_bpp + 4.0 * dim + meta_bpp,
                        }
                    )
                del m, res
                gc.collect()
                bar.update(1)
            bar.set_postfix_str(f"N={n:,} sequence")
            seq = _sequence_bench(x, queries, frames=30 if n <= 100_000 else 10)
            if seq is not None:
                seq_rows.append(seq)
            bar.update(1)
            del x, queries
            gc.collect()
    return search_rows, seq_rows, mem_rows


def _print_maps(console: Console, search: list[dict], seq: list[dict], mem: list[dict]) -> None:
    t = Table(title="Map search, top-5 per query (512-d random unit vectors, revisit queries)")
    cols = (
        "places",
        "index",
        "build s",
        "p50 ms",
        "p95 ms",
        "recall@5",
        "top-1",
        "x naive",
        "note",
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("index", "note") else "right")
    for r in search:
        if "skipped" in r:
            t.add_row(f"{r['size']:,}", r["index"], "-", "-", "-", "-", "-", "-", r["skipped"])
            continue
        t.add_row(
            f"{r['size']:,}",
            r["index"],
            f"{r['build_s']:.2f}" if "build_s" in r else "-",
            f"{r['p50_ms']:.3f}",
            f"{r['p95_ms']:.3f}",
            f"{r['recall_at_5']:.3f}",
            f"{r['top1_agreement']:.3f}",
            f"{r['speedup_vs_naive']:.1f}x" if "speedup_vs_naive" in r else "-",
            r.get("note", f"nlist={r['nlist']}" if "nlist" in r else ""),
        )
    console.print(t)
    console.print(
        "Random unit vectors have no structure, the worst case for graph and quantised indexes: "
        "their recall here is a lower bound for real descriptors. Scores of approximate hits are "
        "exact (IVF-PQ candidates are re-scored with the float32 copy)."
    )
    if seq:
        t = Table(title=f"Sequence matching per frame (length {SEQ_LENGTH})")
        for col in ("places", "ms/frame", "p95 ms", "naive ms/frame", "x naive"):
            t.add_column(col, justify="right")
        for r in seq:
            t.add_row(
                f"{r['size']:,}",
                f"{r['ms_per_frame']:.3f}",
                f"{r['p95_ms_per_frame']:.3f}",
                f"{r['naive_ms_per_frame']:.3f}",
                f"{r['speedup_vs_naive']:.1f}x",
            )
        console.print(t)
        console.print(
            "naive = recompute the L x N similarity matrix from descriptors each frame and sum "
            "its diagonals"
        )
    else:
        console.print("[yellow]sequence matcher not available (lavpr_ros.core.sequence)[/]")
    t = Table(title="Memory per place (bytes)")
    for col in ("places", "index", "faiss index", "float32 copy", "metadata", "total"):
        t.add_column(col, justify="left" if col == "index" else "right")
    for r in mem:
        t.add_row(
            f"{r['size']:,}",
            r["index"],
            f"{r['index_bytes_per_place']:.0f}",
            f"{r['descriptor_bytes_per_place']:.0f}",
            f"{r['metadata_bytes_per_place']:.0f}",
            f"{r['total_bytes_per_place']:.0f}",
        )
    console.print(t)


_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    """A map size: ``1000``, ``1e4``, ``10k`` or ``1M`` (the help's own notation)."""
    t = text.strip().lower()
    scale = _SUFFIXES.get(t[-1:], 1)
    if scale != 1:
        t = t[:-1]
    return int(float(t) * scale)


def _parse_sizes(args: argparse.Namespace) -> list[int]:
    if args.sizes:
        try:
            sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            raise ValueError(
                f"--sizes must be comma-separated sizes like 1000,10k,1M, got {args.sizes!r}"
            ) from None
        if not sizes or min(sizes) < 100:
            raise ValueError("--sizes needs map sizes of at least 100 places")
        return sizes
    return list(QUICK_SIZES if args.quick else DEFAULT_SIZES)


def _proc_status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def bench_onnx_model(model: Path, threads: int, repeats: int = 10) -> dict[str, Any]:
    """One image at a time through ``model`` (ONNX Runtime, CPU) at the manifest's input size:
    the robot's per-frame cost; memory = resident set growth of loading + running it."""
    from lavpr_ros.core.encoders import OnnxEncoder

    rss0 = _proc_status_mb("VmRSS")
    enc = OnnxEncoder(model, providers=["CPUExecutionProvider"], intra_op_threads=threads)
    h, w = enc.manifest.input_size or (224, 224)
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    t = _timeit(lambda: enc.encode([img]), repeats=repeats)
    onnx_file = enc.manifest.model_path
    return {
        "encoder": enc.model_id,
        "input_size": [h, w],
        "output_dim": enc.manifest.output_dim,
        "threads": threads,
        "ms_per_image_median": float(np.median(t)) * 1e3,
        "ms_per_image_p90": float(np.percentile(t, 90)) * 1e3,
        "rss_growth_mb": _proc_status_mb("VmRSS") - rss0,
        "peak_rss_mb": _proc_status_mb("VmHWM"),
        "onnx_mb": onnx_file.stat().st_size / 1e6,
        "repeats": repeats,
    }


def run_model_only(args: argparse.Namespace) -> int:
    if args.onnx_model is None:
        raise SystemExit("--model-only needs --onnx-model DIR")
    threads = _set_threads(args.threads)
    r = bench_onnx_model(args.onnx_model, args.threads)
    r["threads_info"] = threads
    print(
        f"{r['encoder']}: {r['ms_per_image_median']:.1f} ms/image (p90 "
        f"{r['ms_per_image_p90']:.1f}) at {r['input_size'][0]}x{r['input_size'][1]}, "
        f"{r['output_dim']}-d, +{r['rss_growth_mb']:.0f} MB RSS (peak {r['peak_rss_mb']:.0f} MB), "
        f"ONNX {r['onnx_mb']:.1f} MB, {args.threads} thread(s)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2))
    return 0


def run_core(args: argparse.Namespace) -> int:
    import faiss
    import onnxruntime

    if getattr(args, "model_only", False):
        return run_model_only(args)

    sizes = _parse_sizes(args)
    console = Console(width=None if os.isatty(1) else 150)
    threads = _set_threads(args.threads)
    console.print(f"threads: {threads}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lavpr-bench-") as d:
        tmp = Path(d)
        encoders = bench_encoders(args, console, tmp)
        search, seq, mem = bench_maps(args, sizes, console, tmp)
    _print_maps(console, search, seq, mem)
    elapsed = time.perf_counter() - started
    console.print(f"total {elapsed:.1f} s")
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "faiss": faiss.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "settings": {
            "sizes": sizes,
            "dim": args.dim,
            "k": 5,
            "seed": args.seed,
            "threads": threads,
        },
        "encoders": encoders,
        "search": search,
        "sequence": seq,
        "sequence_available": bool(seq),
        "memory": mem,
        "elapsed_s": elapsed,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.json}")
    return 0
