"""``lavpr-train analyze RUN_DIR``: plot a run's CSV logs to PNG (loss curves, recall/epoch)."""

from __future__ import annotations

import csv
from pathlib import Path


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def analyze(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``loss.png`` (batch + epoch losses) and ``recall.png`` (val R@1/5/10 per epoch)
    into ``out`` (default: the run folder); returns the written files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    out = Path(out) if out else run
    out.mkdir(parents=True, exist_ok=True)
    batches, epochs = _read(run / "batch_log.csv"), _read(run / "epoch_log.csv")
    if not batches and not epochs:
        raise FileNotFoundError(f"{run}: no batch_log.csv / epoch_log.csv")
    written = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    if batches:
        steps = [_num(r["global_step"]) for r in batches]
        for key in ("loss", "triplet", "infonce", "multisimilarity"):
            ys = [_num(r.get(key)) for r in batches]
            if any(y is not None for y in ys):
                pts = [(s, y) for s, y in zip(steps, ys, strict=True) if y is not None]
                ax.plot(*zip(*pts, strict=True), lw=0.8, alpha=0.7, label=f"batch {key}")
    if epochs and batches:
        last_step = {}
        for r in batches:
            last_step[int(float(r["epoch"]))] = _num(r["global_step"])
        pts = [
            (last_step[int(float(r["epoch"]))], _num(r["train_loss"]))
            for r in epochs
            if _num(r.get("train_loss")) is not None and int(float(r["epoch"])) in last_step
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", color="k", label="epoch mean loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{run.name}: training loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
    written.append(out / "loss.png")

    rec_cols = [c for c in (epochs[0].keys() if epochs else []) if "_R@" in c and c != "best_R@1"]
    if rec_cols:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for c in rec_cols:
            pts = [(_num(r["epoch"]), _num(r[c])) for r in epochs if _num(r.get(c)) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", label=c)
        ax.set_xlabel("epoch (0 = before training)")
        ax.set_ylabel("recall")
        ax.set_ylim(0, 1)
        ax.set_title(f"{run.name}: validation recall")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "recall.png", dpi=100)
        plt.close(fig)
        written.append(out / "recall.png")
    for p in written:
        print(f"wrote {p}")
    return written
