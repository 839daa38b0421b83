"""Run the real node graph on a recorded image sequence and score its loop closures.

Used by the integration tests, bag replay and `lavpr bench ros`: the graph is started with
`lavpr launch` (separate processes over DDS), the sequence_player publishes the images and
odometry, and the caller listens to vpr/loop_closure like any other ROS node would. The same
frames can be run through the core detector offline (`offline_loop_closures`) to compare.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lavpr_ros.core.sequences import Frame, route_pose
from lavpr_ros.graph.processes import ManagedProcess, ProcessGroup


@dataclass
class ClosureRecord:
    query_id: int
    match_id: int
    query_xy: tuple[float, float]
    match_xy: tuple[float, float]
    score: float
    confidence: float
    latency_ms: float
    received_wall: float = 0.0

    def distance(self) -> float:
        return math.dist(self.query_xy, self.match_xy)


def score_closures(
    closures: list[ClosureRecord], frames: list[Frame], gt_radius_m: float, spacing_m: float
) -> dict[str, Any]:
    """Precision of the published closures and recall over the frames that revisit a place."""
    seen: set[int] = set()
    revisits = 0
    for f in frames:
        if f.place_index in seen:
            revisits += 1
        seen.add(f.place_index)
    correct = [c for c in closures if c.distance() <= gt_radius_m]
    lat = np.array([c.latency_ms for c in closures]) if closures else np.zeros(0)
    return {
        "frames": len(frames),
        "revisit_frames": revisits,
        "loop_closures": len(closures),
        "correct": len(correct),
        "precision": len(correct) / len(closures) if closures else float("nan"),
        "recall": len(correct) / revisits if revisits else float("nan"),
        "gt_radius_m": gt_radius_m,
        "spacing_m": spacing_m,
        "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
    }


def offline_loop_closures(
    frames: list[Frame],
    encoder_spec: str,
    config: Any,
    spacing_m: float,
    stamp_period_s: float = 1.0,
    start_stamp: float = 1000.0,
) -> list[ClosureRecord]:
    """The same frames, stamps and poses through the core detector, in this process."""
    from lavpr_ros.core.encoders import create_encoder
    from lavpr_ros.core.frame_pipeline import FramePipeline, PipelineOptions
    from lavpr_ros.core.images import load_image
    from lavpr_ros.core.place_map import PlaceMap
    from lavpr_ros.core.pose_buffer import PoseBuffer

    encoder = create_encoder(encoder_spec)
    pmap = PlaceMap(dim=encoder.dim, model_id=encoder.model_id)
    options = PipelineOptions(max_clock_skew_s=0.0, expected_model_id=encoder.model_id)
    pipe = FramePipeline(
        config, options, place_map=pmap, poses=PoseBuffer(max_age_s=math.inf, max_len=1 << 62)
    )
    out: list[ClosureRecord] = []
    for i, f in enumerate(frames):
        desc = encoder.encode([load_image(f.path)])[0]
        stamp = start_stamp + i * stamp_period_s
        pipe.push_pose(stamp, route_pose(f.place_index, spacing_m=spacing_m), arrived=stamp)
        recs = pipe.push_descriptor(desc, stamp, encoder.model_id, arrived=stamp)
        recs += pipe.flush(stamp, force=True)
        res = recs[-1].result if recs else None
        d = res.decision if res is not None else None
        if d is not None and d.accepted:
            q, m = pmap.get(int(d.query_id)), pmap.get(int(d.match_id))
            out.append(
                ClosureRecord(
                    int(d.query_id),
                    int(d.match_id),
                    (float(q.pose[0]), float(q.pose[1])),
                    (float(m.pose[0]), float(m.pose[1])),
                    float(d.score),
                    float(d.confidence),
                    float(res.latency_ms),
                )
            )
    return out


def derived_config(base: str | Path, overrides: dict[str, dict[str, Any]], out_path: Path) -> Path:
    """A copy of a parameter file with some parameters changed (``{node: {"a.b": value}}``)."""
    import yaml

    raw = yaml.safe_load(Path(base).read_text()) or {}
    for node, params in overrides.items():
        section = raw.setdefault(f"/**/{node}", {}).setdefault("ros__parameters", {})
        for dotted, value in params.items():
            *parents, leaf = dotted.split(".")
            d = section
            for k in parents:
                d = d.setdefault(k, {})
            d[leaf] = value
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out_path


def launch_command(launch_args: dict[str, str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lavpr_ros.cli.main",
        "launch",
        *(f"{k}:={v}" for k, v in launch_args.items()),
    ]


def player_command(
    dataset: str, start: int, count: int, rate_hz: float, spacing_m: float, extra: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lavpr_ros.nodes.sequence_player",
        "--ros-args",
        "-p",
        f"dataset:={dataset}",
        "-p",
        f"start:={start}",
        "-p",
        f"count:={count}",
        "-p",
        f"rate_hz:={rate_hz}",
        "-p",
        f"spacing_m:={spacing_m}",
        *extra,
    ]


@contextmanager
def running_graph(
    group: ProcessGroup, launch_args: dict[str, str], timeout: float = 60.0
) -> Iterator[ManagedProcess]:
    """`lavpr launch` started and ready (every node printed 'ready'); stopped on exit."""
    from lavpr_ros.graph.description import nodes_to_start
    from lavpr_ros.graph.launcher import resolve_args

    proc = group.start("launch", launch_command(launch_args))
    try:
        for spec in nodes_to_start(resolve_args(launch_args)):
            proc.wait_for_line(f"[{spec.name}] ready", timeout=timeout)
        yield proc
    finally:
        proc.stop(timeout=15)


def play_and_wait(
    group: ProcessGroup,
    dataset: str,
    start: int,
    count: int,
    rate_hz: float,
    spacing_m: float,
    settle_s: float = 3.0,
    extra: list[str] | None = None,
) -> ManagedProcess:
    n_frames = count * 2
    player = group.start(
        "player", player_command(dataset, start, count, rate_hz, spacing_m, extra or [])
    )
    player.wait_for_line("playing", timeout=60)
    player.wait_for_line("done: published", timeout=n_frames / rate_hz * 3 + 60)
    time.sleep(settle_s)
    return player


def env_for_run() -> dict[str, str]:
    """An isolated ROS environment, also applied to this process (for the listener)."""
    from lavpr_ros.graph.ros_env import isolated_ros_env

    env = isolated_ros_env()
    os.environ.update(
        {
            k: env[k]
            for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "RMW_IMPLEMENTATION")
        }
    )
    if "FASTDDS_DEFAULT_PROFILES_FILE" in env:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    return env
