"""Reports of bag evaluations: metrics.json, PR curve, trajectory and example-match PNGs, tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import Decision, OfflineResult, fetch_images


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n", encoding="utf-8")
    return path


def plot_pr(path: Path, curve: dict[str, np.ndarray], m: dict[str, Any], title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(curve.get("recall", [])):
        ax.plot(curve["recall"], curve["precision"], drawstyle="steps-post", label="PR curve")
    if math.isfinite(m.get("recall", float("nan"))) and math.isfinite(
        m.get("precision", float("nan"))
    ):
        ax.plot([m["recall"]], [m["precision"]], "o", color="tab:red", label="operating point")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"{title}\nAUC-PR {m.get('auc_pr', 0):.3f} (sweep: {m.get('pr_sweep', '')})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_trajectory(path: Path, res: OfflineResult, title: str) -> Path:
    """Left: true positions with loop closures (query -> match) coloured correct/false.
    Right: query keyframe vs matched keyframe (time), accepted correct/false and rejected."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    gt = res.gt
    stamps = res.frame_stamps_ns
    if gt is not None:
        xyz = [gt.position(s) for s in stamps]
        pts = np.array([p for p in xyz if p is not None])
        if len(pts) > 1:  # break the line at jumps (e.g. between traverses)
            step = np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1)
            cut = np.flatnonzero(step > 10 * max(float(np.median(step)), 1e-9)) + 1
            pts = np.insert(pts.astype(float), cut, np.nan, axis=0)
            ax.plot(pts[:, 0], pts[:, 1], "-", color="0.75", lw=1, label="trajectory")
        for d in res.decisions:
            if not d.accepted or d.correct is None:
                continue
            a, b = gt.position(d.query_stamp_ns), gt.position(d.match_stamp_ns)
            color = "tab:green" if d.correct else "tab:red"
            ax.plot([a[0], b[0]], [a[1], b[1]], "-", color=color, lw=0.8, alpha=0.8)
            ax.plot([a[0]], [a[1]], ".", color=color, ms=3)
    ax.plot([], [], color="tab:green", label="correct loop closure")
    ax.plot([], [], color="tab:red", label="false loop closure")
    ax.set(xlabel="x [m]", ylabel="y [m]", title="true positions")
    ax.axis("equal")
    ax.legend(loc="best", fontsize=8)
    t0 = res.kf_stamps_ns[0] if res.kf_stamps_ns else 0
    groups = {"rejected best candidate": [], "correct": [], "false": []}
    for d in res.decisions:
        key = "rejected best candidate" if not d.accepted else ("correct" if d.correct else "false")
        groups[key].append(((d.query_stamp_ns - t0) / 1e9, (d.match_stamp_ns - t0) / 1e9))
    style = {
        "rejected best candidate": ("0.8", 2),
        "correct": ("tab:green", 6),
        "false": ("tab:red", 8),
    }
    for key, pts in groups.items():
        if pts:
            arr = np.array(pts)
            color, size = style[key]
            ax2.scatter(arr[:, 0], arr[:, 1], s=size, color=color, label=f"{key} ({len(pts)})")
    ax2.set(xlabel="query stamp [s]", ylabel="matched place stamp [s]", title="matches over time")
    ax2.legend(loc="upper left", fontsize=8)
    m = res.metrics
    fig.suptitle(
        f"{title}: precision {m.get('precision', float('nan')):.3f}, "
        f"recall {m.get('recall', float('nan')):.3f}, {m.get('loop_closures', 0)} closures"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pick(ds: list[Decision], n: int) -> list[Decision]:
    if len(ds) <= n:
        return ds
    idx = np.linspace(0, len(ds) - 1, n).round().astype(int)
    return [ds[i] for i in idx]


def plot_matches(path: Path, res: OfflineResult, n_each: int = 4) -> Path:
    """Rows of query | matched image: a few correct and a few false loop closures."""
    plt = _plt()
    correct = _pick([d for d in res.decisions if d.accepted and d.correct], n_each)
    false = _pick([d for d in res.decisions if d.accepted and d.correct is False], n_each)
    label_false = "false"
    if not false:  # nothing false accepted: show wrong best candidates that were rejected
        false = _pick([d for d in res.decisions if not d.accepted and d.correct is False], n_each)
        label_false = "rejected, wrong"
    rows = [(d, "correct") for d in correct] + [(d, label_false) for d in false]
    stamps = {s for d, _ in rows for s in (d.query_stamp_ns, d.match_stamp_ns)}
    images = fetch_images(res.source, res.image_topic, res.image_type, stamps)
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 2, figsize=(6, 1.6 * n + 0.4), squeeze=False)
    for r, (d, label) in enumerate(rows):
        for c, (stamp, what) in enumerate(
            ((d.query_stamp_ns, "query"), (d.match_stamp_ns, "match"))
        ):
            ax = axes[r][c]
            if stamp in images:
                ax.imshow(images[stamp])
            ax.set_xticks([])
            ax.set_yticks([])
            conf = "" if d.confidence is None else f" conf {d.confidence:.2f}"
            text = f"{what} t={stamp / 1e9:.1f}s"
            if c == 1:
                text += f"  [{label}]{conf}"
            ax.set_title(text, fontsize=7, color="tab:green" if label == "correct" else "tab:red")
    if not rows:
        axes[0][0].set_title("no loop closures to show", fontsize=8)
        for ax in axes[0]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_offline_report(res: OfflineResult, out_dir: Path, title: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / "metrics.json",
        "pr_curve": out_dir / "pr_curve.png",
        "trajectory": out_dir / "trajectory.png",
        "matches": out_dir / "matches.png",
    }
    plot_pr(paths["pr_curve"], res.curve, res.metrics, title)
    plot_trajectory(paths["trajectory"], res, title)
    plot_matches(paths["matches"], res)
    res.metrics["outputs"] = {k: str(v) for k, v in paths.items()}
    write_json(paths["metrics"], res.metrics)
    return paths


MAIN_KEYS = (
    "frames_read",
    "frames_processed",
    "keyframes",
    "positive_queries",
    "loop_closures",
    "correct",
    "false",
    "precision",
    "recall",
    "auc_pr",
    "auc_pr_accepted_only",
    "recall_at_100p",
    "recall@1",
    "recall@5",
    "recall@10",
)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.3f}"
    return str(v)


def print_table(columns: dict[str, dict[str, Any]], title: str) -> None:
    """One rich table: a row per metric, a column per run (offline, online, ...)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    keys = [k for k in MAIN_KEYS if any(k in m for m in columns.values())]
    for k in keys:
        table.add_row(k, *(_fmt(m.get(k)) for m in columns.values()))
    for label, vals in latency_rows(columns):
        table.add_row(label, *(_fmt(v) for v in vals))
    Console(stderr=False).print(table)


def latency_rows(columns: dict[str, dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(label with its unit, one value per run) for each latency percentile some run has."""
    rows = []
    for part in ("total", "encode", "detect", "decision"):
        for q in ("p50", "p95"):
            vals = [(m.get("latency_ms") or {}).get(part, {}).get(q) for m in columns.values()]
            if any(v is not None for v in vals):
                rows.append((f"latency {part} {q} [ms]", vals))
    return rows


def markdown_table(columns: dict[str, dict[str, Any]]) -> str:
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in MAIN_KEYS:
        if any(k in m for m in columns.values()):
            lines.append(f"| {k} | " + " | ".join(_fmt(columns[n].get(k)) for n in names) + " |")
    for label, vals in latency_rows(columns):
        lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"
