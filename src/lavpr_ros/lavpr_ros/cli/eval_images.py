"""``lavpr eval-images``: place-recognition accuracy of an encoder on a ref/query image dataset.

Single-frame Recall@1/5/10 and, with ``--sequence-length L``, sequence Recall@1 from the same
:class:`LoopClosureDetector` the ROS node runs (localisation mode: the reference traverse is a
fixed prior map, every query frame is a keyframe), plus a PR curve over the best match's score.

Measured with the default patch-norm encoder (64x32, 8-px patches) on 2 shared CPU cores:
Nordland winter queries vs summer map (3576 frames, ±1 frame): single-frame R@1 0.132
(R@5 0.237, R@10 0.294); sequence R@1 0.886 at L=20 with velocities 0.8..1.25 (AUC-PR 0.885 over
the sequence confidence, recall 0.789 at 100 % precision), 0.903 diagonal-only; ~31 s in all.
Corridor: single-frame R@1 0.369; sequences at L=10 need ``--no-contrast`` on this densely sampled
traverse (0.586, AUC-PR 0.512; 0.279 with the Nordland normalisation). Descriptor sizes tried on
Nordland (sequence R@1, L=20, batch prototype): 64x32/p8 0.899, 48x24/p6 0.900, 64x32/p16 0.896,
64x32/p4 0.893, 32x16/p8 0.889; single-frame R@1 best for 64x32/p8 (0.132). See
core/sequence.py for the sequence-matching variants tried.

Language modes (LaVPR), ``--mode text|fusion|cross-modal`` with description CSVs in the LaVPR
layout (``image_path,description``, keyed by image file name): ``text`` ranks the described
reference images by the query's description; ``cross-modal`` ranks reference *image*
descriptors by the query's description (a text model mapped into the image space); ``fusion``
ranks by the fused image + text score and reports image-only Recall on the same queries.
``--query-range A:B`` restricts the queries (e.g. those held out from training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.datasets import ImagePairDataset, corridor, load_image_pair_dataset, nordland
from ..core.metrics import (
    auc_pr,
    latency_percentiles,
    precision_recall_curve,
    recall_at_k,
    recall_at_precision,
)
from ..core.sequence import DEFAULT_VELOCITIES

KS = (1, 5, 10)


def encode_paths(encoder: Any, paths: list[Path], batch_size: int, desc: str, quiet: bool):
    """(N, dim) descriptors and per-image encode time (ms), with a tqdm bar on stderr."""
    from tqdm import tqdm

    from ..core.images import load_image

    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    t0 = time.perf_counter()
    with tqdm(total=len(paths), desc=desc, unit="img", disable=quiet, file=sys.stderr) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            out[start : start + len(chunk)] = encoder.encode([load_image(p) for p in chunk])
            bar.update(len(chunk))
    return out, (time.perf_counter() - t0) * 1e3 / max(1, len(paths))


def evaluate_descriptors(
    ref: np.ndarray,
    query: np.ndarray,
    positives: list[set[int]],
    model_id: str,
    sequence_length: int = 0,
    velocities: tuple[float, ...] = DEFAULT_VELOCITIES,
    quiet: bool = True,
    **sequence_options: Any,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run the detector over the query traverse against the ref map; (metrics, PR curve arrays).

    ``sequence_options``: contrast_normalise, contrast_window, query_window, std_floor,
    sequence_search, shortlist_min_places.
    """
    from tqdm import tqdm

    from ..core.frame_pipeline import FramePipeline, PipelineOptions
    from ..core.loop_closure import LoopClosureConfig
    from ..core.place_map import PlaceMap

    pm = PlaceMap(ref.shape[1], model_id)
    pm.add_batch(ref, np.arange(len(ref), dtype=np.float64))
    config = LoopClosureConfig(
        mode="localisation",
        top_k=max(KS),
        sequence_length=sequence_length,
        velocities=velocities,
        min_sequence_frames=1,
        keyframe_min_distance_m=0.0,
        keyframe_min_rotation_rad=0.0,
        keyframe_max_interval_s=0.0,
        **sequence_options,
    )
    options = PipelineOptions(use_poses=False, max_clock_skew_s=0.0, expected_model_id=model_id)
    pipe = FramePipeline(config, options, place_map=pm)
    ranked = np.full((len(query), min(max(KS), len(ref))), -1, dtype=np.int64)
    seq_best = np.zeros(len(query), dtype=np.int64)
    single_score = np.zeros(len(query))
    seq_conf = np.zeros(len(query))
    latencies = []
    for i in tqdm(range(len(query)), desc="match", unit="q", disable=quiet, file=sys.stderr):
        # Stamps 1, 2, ... (0 means "unset" to the pipeline); localisation excludes nothing.
        recs = pipe.push_descriptor(query[i], float(i + 1), model_id, arrived=float(i + 1))
        recs += pipe.flush(float(i + 1), force=True)
        if not recs or recs[-1].result is None:
            raise ValueError(f"query {i} refused: {recs[-1].reason if recs else 'no result'}")
        res = recs[-1].result
        assert res.decision is not None
        ids = [c[0] for c in res.candidates]
        ranked[i, : len(ids)] = ids
        single_score[i] = res.candidates[0][1]
        seq_best[i] = res.decision.match_id
        seq_conf[i] = res.decision.confidence if res.decision.confidence is not None else 0.0
        latencies.append(res.latency_ms)

    has_pos = sum(1 for p in positives if p)
    single_ok = np.array([int(ranked[q, 0]) in positives[q] for q in range(len(query))])
    metrics: dict[str, Any] = dict(recall_at_k(ranked, positives, KS))
    metrics["single_auc_pr"] = auc_pr(single_score, single_ok, has_pos)
    metrics["single_recall_at_100p"] = recall_at_precision(single_score, single_ok, 1.0, has_pos)
    if sequence_length > 0:
        seq_ok = np.array([int(seq_best[q]) in positives[q] for q in range(len(query))])
        metrics["sequence_recall@1"] = float(seq_ok.sum() / max(1, has_pos))
        scores, correct, method = seq_conf, seq_ok, "sequence-confidence"
    else:
        scores, correct, method = single_score, single_ok, "single-cosine"
    precision, recall, _ = precision_recall_curve(scores, correct, has_pos)
    metrics["auc_pr"] = auc_pr(scores, correct, has_pos)
    metrics["recall_at_100p"] = recall_at_precision(scores, correct, 1.0, has_pos)
    metrics["pr_score"] = method
    metrics["latency_ms"] = latency_percentiles(latencies)
    return metrics, {"precision": precision, "recall": recall}


def _dataset_from_args(args: argparse.Namespace) -> ImagePairDataset:
    if args.dataset:
        if args.ref or args.query:
            raise ValueError("give either --dataset or --ref/--query, not both")
        ds = corridor() if args.dataset == "corridor" else nordland(tolerance=args.tolerance)
    else:
        if not (args.ref and args.query):
            raise ValueError("--ref and --query are required (or use --dataset)")
        ds = load_image_pair_dataset(args.ref, args.query, args.ground_truth, args.tolerance)
    if args.start or args.limit:
        ds = ds.subset(args.start, args.limit)
    return ds


def _plot_pr(path: Path, curve: dict[str, np.ndarray], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(curve["recall"], curve["precision"], drawstyle="steps-post")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _print_table(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics['dataset']} - {metrics['encoder']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, val in metrics.items():
        if isinstance(val, float):
            table.add_row(key, f"{val:.4f}")
        elif isinstance(val, dict):
            parts = (f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in val.items())
            table.add_row(key, ", ".join(parts))
        else:
            table.add_row(key, str(val))
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    from ..core.encoders import create_encoder

    if args.mode != "image":
        return run_language(args)
    if args.sequence_length < 0:
        raise ValueError("--sequence-length must be >= 0")
    velocities = tuple(float(v) for v in args.velocities.split(","))
    ds = _dataset_from_args(args)
    encoder = create_encoder(args.encoder)
    quiet = args.json or args.quiet
    ref, ref_ms = encode_paths(encoder, ds.ref_paths, args.batch_size, "ref", quiet)
    query, q_ms = encode_paths(encoder, ds.query_paths, args.batch_size, "query", quiet)
    seq_opts = {
        "contrast_normalise": not args.no_contrast,
        "contrast_window": args.contrast_window,
        "query_window": args.query_window,
        "std_floor": args.std_floor,
        "sequence_search": args.sequence_search,
        "shortlist_min_places": args.shortlist_min_places,
    }
    metrics, curve = evaluate_descriptors(
        ref,
        query,
        ds.positives,
        encoder.model_id,
        args.sequence_length,
        velocities,
        quiet,
        **seq_opts,
    )
    out_dir = Path(args.out or f"results/eval-{ds.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "dataset": ds.name,
        "encoder": encoder.model_id,
        "provider": encoder.provider,
        "num_queries": len(ds.query_paths),
        "num_refs": len(ds.ref_paths),
        "sequence_length": args.sequence_length,
        "velocities": list(velocities) if args.sequence_length else [],
        "sequence_options": seq_opts if args.sequence_length else {},
        **metrics,
        "encode_ms_per_image": (ref_ms * len(ref) + q_ms * len(query)) / (len(ref) + len(query)),
    }
    result["pr_curve_png"] = str(out_dir / "pr_curve.png")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _plot_pr(out_dir / "pr_curve.png", curve, f"{ds.name} ({result['pr_score']})")
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _query_range(spec: str | None, n: int) -> list[int]:
    if not spec:
        return list(range(n))
    a, b = (int(v) for v in spec.split(":"))
    if not 0 <= a < b:
        raise ValueError(f"--query-range must be A:B with 0 <= A < B, got {spec!r}")
    return list(range(a, min(b, n)))


def language_metrics(
    sims: np.ndarray, positives: list[set[int]], prefix: str = ""
) -> dict[str, float]:
    """Recall@k of a (Q, N) score matrix (NaN/-inf scores rank last)."""
    s = np.nan_to_num(np.asarray(sims, dtype=np.float64), nan=-np.inf)
    ranked = np.argsort(-s, axis=1, kind="stable")[:, : max(KS)]
    return {prefix + k: v for k, v in recall_at_k(ranked, positives, KS).items()}


def run_language(args: argparse.Namespace) -> int:
    """--mode text | fusion | cross-modal: Recall@k over the queries that have a description."""
    from ..core.descriptions import descriptions_for, read_descriptions

    ds = _dataset_from_args(args)
    if not args.query_descriptions:
        raise ValueError(f"--mode {args.mode} needs --query-descriptions (a LaVPR-layout CSV)")
    q_text = descriptions_for(ds.query_paths, read_descriptions(args.query_descriptions))
    chosen = [i for i in _query_range(args.query_range, len(ds.query_paths)) if q_text[i]]
    if not chosen:
        raise ValueError("no query in range has a description in --query-descriptions")
    texts = [q_text[i] or "" for i in chosen]
    positives = [ds.positives[i] for i in chosen]
    quiet = args.json or args.quiet
    result: dict[str, Any] = {
        "dataset": ds.name,
        "mode": args.mode,
        "num_refs": len(ds.ref_paths),
        "num_queries": len(ds.query_paths),
        "num_queries_evaluated": len(chosen),
        "query_range": args.query_range or "all",
        "query_folder": str(ds.query_paths[0].parent) if ds.query_paths else "",
    }
    t0 = time.perf_counter()
    r_text: list[str | None] = [None] * len(ds.ref_paths)
    if args.mode in ("text", "fusion"):
        if not (args.descriptions and args.text_model):
            raise ValueError(f"--mode {args.mode} needs --descriptions and --text-model")
        from ..core.text_encoder import TextEncoder

        r_text = descriptions_for(ds.ref_paths, read_descriptions(args.descriptions))
        described = [j for j, t in enumerate(r_text) if t]
        if not described:
            raise ValueError("no reference image has a description in --descriptions")
        text_enc = TextEncoder(args.text_model)
        qt = text_enc.encode(texts)
        rt = np.zeros((len(ds.ref_paths), text_enc.dim), np.float32)
        rt[described] = text_enc.encode([r_text[j] or "" for j in described])
        has = np.zeros(len(ds.ref_paths), dtype=bool)
        has[described] = True
        s_text = np.where(has[None, :], qt @ rt.T, np.nan)
        result["text_model"] = text_enc.model_id
        result["num_refs_described"] = len(described)
        result.update(language_metrics(s_text, positives, "text_"))
    if args.mode in ("fusion", "cross-modal"):
        from ..core.encoders import create_encoder

        encoder = create_encoder(args.encoder)
        ref, _ = encode_paths(encoder, ds.ref_paths, args.batch_size, "ref", quiet)
        result["encoder"] = encoder.model_id
    if args.mode == "cross-modal":
        if not args.cross_modal_model:
            raise ValueError("--mode cross-modal needs --cross-modal-model")
        from ..core.cross_modal import CrossModalRetriever

        cm = CrossModalRetriever(args.cross_modal_model)
        cm.check_map(encoder.model_id, encoder.dim)
        result["cross_modal_model"] = cm.model_id
        result.update(language_metrics(cm.embed(texts) @ ref.T, positives, "cross_modal_"))
    if args.mode == "fusion":
        if not args.fusion_model:
            raise ValueError("--mode fusion needs --fusion-model")
        from ..core.fusion import FusionModel

        fm = FusionModel(args.fusion_model)
        fm.check_models(encoder.model_id, text_enc.model_id)
        paths = [ds.query_paths[i] for i in chosen]
        qi, _ = encode_paths(encoder, paths, args.batch_size, "query", quiet)
        fused = np.stack([fm.scores(qi[n], qt[n], ref, rt, has).score for n in range(len(chosen))])
        result["fusion_model"] = fm.model_id
        result["fusion_mode"] = fm.mode
        result.update(language_metrics(qi @ ref.T, positives, "image_"))
        result.update(language_metrics(fused, positives, "fusion_"))
        if fm.mode != "concat":
            w = fm.weights(qi, qt)
            result["mean_w_image"] = float(w[:, 0].mean())
    result["seconds"] = time.perf_counter() - t0
    out_dir = Path(args.out or f"results/eval-{ds.name}-{args.mode}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        _print_table({"encoder": result.get("encoder", args.mode), **result})
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval-images",
        help="Recall@K, sequence recall, PR curve and latency on a ref/query image dataset",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--dataset", choices=("corridor", "nordland"), help="shortcut for --ref/--query")
    p.add_argument("--ref", type=Path, help="folder of reference (map) images")
    p.add_argument("--query", type=Path, help="folder of query images")
    p.add_argument("--ground-truth", type=Path, help="Corridor-style JSON of positives per query")
    p.add_argument("--tolerance", type=int, default=1, help="±frames when no ground truth JSON")
    p.add_argument("--encoder", default="patchnorm", help="'patchnorm[:WxH[:P]]' or a manifest")
    p.add_argument("--sequence-length", type=int, default=0, help="frames per sequence (0: off)")
    p.add_argument(
        "--velocities",
        default=",".join(f"{v:g}" for v in DEFAULT_VELOCITIES),
        help="comma-separated relative velocities for sequence matching",
    )
    p.add_argument(
        "--no-contrast", action="store_true", help="sequences over raw cosines (dense traverses)"
    )
    p.add_argument("--contrast-window", type=int, default=5, help="map-side radius (places)")
    p.add_argument("--query-window", type=int, default=20, help="query-side window (0: off)")
    p.add_argument("--std-floor", type=float, default=0.5, help="z-score std floor")
    p.add_argument(
        "--sequence-search",
        choices=("full", "shortlist", "auto"),
        default="auto",
        help="score sequences over every place or near index candidates (core/sequence_shortlist)",
    )
    p.add_argument(
        "--shortlist-min-places",
        type=int,
        default=20_000,
        help="map size from which 'auto' uses the shortlist (default 20000)",
    )
    p.add_argument(
        "--start", type=int, default=0, help="first frame of a segment of both traverses"
    )
    p.add_argument("--limit", type=int, default=None, help="frames in the segment")
    p.add_argument(
        "--mode",
        choices=("image", "text", "fusion", "cross-modal"),
        default="image",
        help="retrieval mode (LaVPR): image, text (descriptions), fusion, cross-modal",
    )
    p.add_argument("--descriptions", type=Path, help="LaVPR-layout CSV of the reference images")
    p.add_argument("--query-descriptions", type=Path, help="LaVPR-layout CSV of the queries")
    p.add_argument("--text-model", help="text model manifest (text and fusion modes)")
    p.add_argument("--fusion-model", help="fusion model manifest (kind fusion)")
    p.add_argument("--cross-modal-model", help="cross-modal text model manifest")
    p.add_argument("--query-range", help="A:B: evaluate queries A..B-1 only (held-out split)")
    p.add_argument("--batch-size", type=int, default=64, help="images per encoder call [images]")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, help="output folder (default results/eval-<dataset>)")
    p.set_defaults(func=run)
