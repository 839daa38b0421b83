"""``lavpr text calibrate``: text_nav's min_score / min_margin measured and chosen on a described
map (Corridor by default)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lavpr_ros.core.data_location import _repo_root

_ROOT = _repo_root() or Path.cwd()
PREVIOUS_POLICY = (0.35, 0.0)  # text_nav's defaults before calibration (min_score, no margin)


def _calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lavpr_ros.core.datasets import corridor, load_image_pair_dataset
    from lavpr_ros.core.descriptions import descriptions_for, read_descriptions
    from lavpr_ros.core.text_calibration import (
        Command,
        evaluate,
        read_commands,
        same_place_from_positives,
        sweep,
    )
    from lavpr_ros.core.text_encoder import TextEncoder
    from lavpr_ros.core.text_goal import GoalPolicy, decide_goal

    console = Console()
    if args.ref or args.query or args.ground_truth:
        if not (args.ref and args.query and args.ground_truth):
            raise ValueError("--ref, --query and --ground-truth go together (another map)")
        ds = load_image_pair_dataset(args.ref, args.query, args.ground_truth)
    else:
        ds = corridor()
    ref_text = descriptions_for(ds.ref_paths, read_descriptions(args.descriptions))
    if not any(ref_text):
        raise ValueError(f"{args.descriptions}: no reference image of Corridor is described")
    commands = read_commands(args.commands)
    bad = [c.text for c in commands if any(j >= len(ds.ref_paths) for j in c.places)]
    if bad:
        raise ValueError(f"{args.commands}: places beyond the {len(ds.ref_paths)} refs: {bad}")
    held_out: list[Command] = []
    if args.query_descriptions:
        q_text = descriptions_for(ds.query_paths, read_descriptions(args.query_descriptions))
        held_out = [
            Command(t, "in_map", frozenset(pos))
            for t, pos in zip(q_text, ds.positives, strict=True)
            if t and pos
        ]
    enc = TextEncoder(args.text_model)
    described = [j for j, t in enumerate(ref_text) if t]
    with console.status(f"encoding {len(described)} descriptions and the commands"):
        place_emb = enc.encode([ref_text[j] for j in described])

        def score(cmds: list[Command]) -> np.ndarray:
            full = np.full((len(cmds), len(ds.ref_paths)), -np.inf)
            if cmds:
                full[:, described] = enc.encode([c.text for c in cmds]) @ place_emb.T
            return full

        s_cal, s_held = score(commands), score(held_out)
    same = same_place_from_positives(ds.positives)
    grid = sweep(
        s_cal,
        commands,
        same,
        np.round(np.arange(args.score_range[0], args.score_range[1] + 1e-9, 0.01), 4),
        np.round(np.arange(0.0, args.max_margin + 1e-9, 0.005), 4),
        args.max_false_rate,
    )
    before, after = GoalPolicy(*PREVIOUS_POLICY), grid.chosen
    result: dict[str, Any] = {
        "text_model": enc.model_id,
        "commands": str(args.commands),
        "descriptions": str(args.descriptions),
        "max_false_rate": args.max_false_rate,
        "before": {"policy": asdict(before)},
        "after": {"policy": asdict(after)},
    }
    for label, pol in (("before", before), ("after", after)):
        result[label]["commands"] = _clean(asdict(evaluate(s_cal, commands, pol, same)))
        if held_out:
            result[label]["held_out"] = _clean(asdict(evaluate(s_held, held_out, pol, same)))
        result[label]["false_goals"] = [
            c.text
            for c, row in zip(commands, s_cal, strict=True)
            if c.kind == "out_of_map" and decide_goal(row, pol, same).accept
        ]
    result["grid"] = {
        "min_scores": grid.min_scores.tolist(),
        "margins": grid.margins.tolist(),
        "false_goal_rate": grid.false_goal.tolist(),
        "top1_accuracy": grid.top1.tolist(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "text_calibration.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    _plot(out / "text_calibration.png", grid, before, after)

    table = Table(title=f"text goal calibration ({enc.model_id})")
    for col in ("", "set", "min_score", "margin", "false goals", "top-1 acc", "goal rate"):
        table.add_column(col)
    for label in ("before", "after"):
        pol = result[label]["policy"]
        for key in ("commands", "held_out"):
            o = result[label].get(key)
            if o is None:
                continue
            fg = o["false_goal_rate"]
            table.add_row(
                label,
                f"{key} ({o['n_in_map']} in, {o['n_out_of_map']} out)",
                f"{pol['min_score']:.2f}",
                f"{pol['min_margin']:.3f}",
                "-" if fg is None else f"{fg:.3f}",
                f"{o['top1_accuracy']:.3f}",
                f"{o['in_map_goal_rate']:.3f}",
            )
    console.print(table)
    console.print(f"wrote {out / 'text_calibration.json'} and {out / 'text_calibration.png'}")
    return 0


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """NaN (a rate over no commands) -> None, so the JSON stays standard."""
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


def _plot(path: Path, grid: Any, before: Any, after: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    extent = (grid.margins[0], grid.margins[-1], grid.min_scores[0], grid.min_scores[-1])
    for ax, data, title in (
        (axes[0], grid.false_goal, "false-goal rate (out-of-map commands)"),
        (axes[1], grid.top1, "top-1 accuracy with a goal (in-map commands)"),
    ):
        im = ax.imshow(data, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=1)
        ax.plot(before.min_margin, before.min_score, "rx", label="before")
        ax.plot(after.min_margin, after.min_score, "w*", ms=12, label="after (chosen)")
        ax.set(xlabel="min_margin (cosine)", title=title)
        fig.colorbar(im, ax=ax)
    axes[0].set_ylabel("min_score (cosine)")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("text", help="text goals: threshold calibration", formatter_class=fmt)
    tsub = p.add_subparsers(dest="text_command", required=True)
    c = tsub.add_parser(
        "calibrate",
        help="choose text_nav's min_score and min_margin on Corridor's descriptions",
        formatter_class=fmt,
    )
    c.add_argument(
        "--commands",
        type=Path,
        default=_ROOT / "evaluation" / "commands" / "corridor_commands.csv",
        help="CSV command,kind,places (in_map / out_of_map commands); default "
        "evaluation/commands/corridor_commands.csv",
    )
    c.add_argument(
        "--descriptions",
        type=Path,
        default=_ROOT / "evaluation" / "descriptions" / "corridor_ref.csv",
        help="LaVPR-layout CSV describing the map (Corridor reference images); default "
        "evaluation/descriptions/corridor_ref.csv",
    )
    c.add_argument(
        "--query-descriptions",
        default=str(_ROOT / "evaluation" / "descriptions" / "corridor_query.csv"),
        help="held-out in-map commands: the query images' descriptions, scored with the "
        "ground truth (not used to choose); '' to skip; default "
        "evaluation/descriptions/corridor_query.csv",
    )
    c.add_argument(
        "--ref",
        type=Path,
        help="another map: its reference image folder (indices = sorted file order); "
        "default Corridor's",
    )
    c.add_argument("--query", type=Path, help="another map: its query image folder")
    c.add_argument(
        "--ground-truth",
        type=Path,
        help="another map: JSON [{query, positives}] (defines which places are the same place)",
    )
    c.add_argument(
        "--text-model",
        default=str(_ROOT / "models" / "minilm-l6-v2"),
        help="text encoder manifest or its directory",
    )
    c.add_argument(
        "--max-false-rate",
        type=float,
        default=0.05,
        help="largest false-goal rate on out-of-map commands the choice may have (fraction)",
    )
    c.add_argument(
        "--score-range",
        type=float,
        nargs=2,
        default=(0.30, 0.70),
        metavar=("LO", "HI"),
        help="min_score values swept, step 0.01 (cosine)",
    )
    c.add_argument(
        "--max-margin", type=float, default=0.10, help="largest min_margin swept, step 0.005"
    )
    c.add_argument(
        "--out", type=Path, default=Path("results/text_calibration"), help="output folder"
    )
    c.set_defaults(func=_calibrate)
