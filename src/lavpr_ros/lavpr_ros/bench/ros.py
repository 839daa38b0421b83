"""`lavpr bench ros`: end-to-end latency and the highest sustained input rate of the node graph.

For each encoder and input rate the real graph (vpr_encoder + place_map, separate processes over
DDS) is started fresh, and this process publishes Nordland frames (upscaled to a camera-sized
image, default 640x480 rgb8) with odometry, summer segment then winter segment, stamped with the
wall clock at publishing. Latencies are receive time minus that stamp: image -> descriptor for
every frame, image -> loop closure for the revisits. A rate counts as sustained when (almost)
every frame was encoded and the lag did not grow over the run (the median latency of the last
third stays within 1.5x that of the first third, plus 5 ms).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from lavpr_ros.core.images import load_image
from lavpr_ros.core.sequences import dataset_frames, route_pose
from lavpr_ros.graph.description import default_config_file
from lavpr_ros.graph.online_run import derived_config, env_for_run, running_graph
from lavpr_ros.graph.processes import ProcessGroup
from lavpr_ros.graph.ros_client import RosClient


class _BenchNode(RosClient):
    """Publishes frames and records when descriptors and loop closures come back."""

    def __init__(self) -> None:
        from lavpr_interfaces.msg import LoopClosure, PlaceDescriptor
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image

        super().__init__("lavpr_bench")
        self.pub_img = self.publisher(Image, "camera/image_raw")
        self.pub_odom = self.publisher(Odometry, "odom")
        self.desc_lat: list[tuple[float, float]] = []  # (stamp, latency s)
        self.lc_lat: list[float] = []
        self.node.create_subscription(PlaceDescriptor, "vpr/descriptor", self._on_desc, 1000)
        self.node.create_subscription(LoopClosure, "vpr/loop_closure", self._on_lc, 1000)
        self.Image, self.Odometry = Image, Odometry

    @staticmethod
    def _sec(stamp: Any) -> float:
        return stamp.sec + stamp.nanosec * 1e-9

    def _on_desc(self, msg: Any) -> None:
        s = self._sec(msg.header.stamp)
        self.desc_lat.append((s, time.time() - s))

    def _on_lc(self, msg: Any) -> None:
        self.lc_lat.append(time.time() - self._sec(msg.header.stamp))

    def wait_matched(self, timeout: float = 30.0) -> None:
        from lavpr_ros.nodes.discovery import wait_for_readers

        wanted = {self.pub_img.topic_name: ["vpr_encoder"], self.pub_odom.topic_name: ["place_map"]}
        wait_for_readers(self.node, wanted, timeout)

    def play(self, images: list[np.ndarray], poses: list[np.ndarray], rate: float) -> int:
        from lavpr_ros.nodes.convert import array_to_pose, sec_to_stamp

        period = 1.0 / rate
        t_next = time.perf_counter()
        for img, pose in zip(images, poses, strict=True):
            now = time.time()
            odom = self.Odometry()
            odom.header.stamp = sec_to_stamp(now)
            odom.header.frame_id = "odom"
            odom.pose.pose = array_to_pose(pose)
            msg = self.Image()
            msg.header.stamp = odom.header.stamp
            msg.header.frame_id = "camera"
            msg.height, msg.width = img.shape[:2]
            msg.encoding, msg.step = "rgb8", img.shape[1] * 3
            msg.data = img.tobytes()
            self.pub_odom.publish(odom)
            self.pub_img.publish(msg)
            t_next += period
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        return len(images)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000.0) if values else float("nan")


def run_bench_ros(
    encoders: list[str],
    rates: list[float],
    frames_per_traverse: int = 60,
    image_size: tuple[int, int] = (640, 480),
    start: int = 1000,
    settle_s: float = 2.0,
    out_json: Path | None = None,
    progress: Any = print,
    map_path: Path | None = None,
) -> dict[str, Any]:
    """``map_path``: a saved map place_map loads before the run (e.g. 1M places of `lavpr bench
    scale`): the run's frames are then matched against it plus their own earlier places."""
    env = env_for_run()
    frames = dataset_frames("nordland", ["summer", "winter"], start, frames_per_traverse)
    w, h = image_size
    images = [
        np.asarray(PILImage.fromarray(load_image(f.path)).resize((w, h), PILImage.BILINEAR))
        for f in frames
    ]
    poses = [route_pose(f.place_index) for f in frames]
    results: dict[str, Any] = {"image_size": f"{w}x{h}", "frames": len(frames), "runs": []}
    if map_path is not None:
        from lavpr_ros.core.place_map import read_manifest

        meta = read_manifest(map_path)  # place_map loads (and verifies) the map itself
        results["map"] = {"path": str(map_path), "places": meta["count"]}
    tmp = Path(out_json).parent if out_json else Path("results")
    config = derived_config(
        default_config_file(),
        # Stamps are wall time here, the revisit comes seconds later: exclude by count only.
        {"place_map": {"loop_closure.exclude_recent_s": 0.0, "marker_period_s": 0.0}},
        tmp / "bench-ros-params.yaml",
    )
    for enc in encoders:
        best = 0.0
        for rate in sorted(rates):
            group = ProcessGroup(env=env)
            bench = _BenchNode()
            try:
                args = {"config_file": str(config), "image_model": enc, "start_text_nav": "false"}
                if map_path is not None:
                    args["map_path"] = str(Path(map_path).resolve())
                with running_graph(group, args):
                    bench.wait_matched(timeout=30.0 if map_path is None else 300.0)
                    t0 = time.perf_counter()
                    sent = bench.play(images, poses, rate)
                    play_s = time.perf_counter() - t0
                    time.sleep(settle_s)
            finally:
                group.stop_all()
                bench.close()
            lat = [lat for _, lat in sorted(bench.desc_lat)]
            third = max(1, len(lat) // 3)
            first, last = (
                np.median(lat[:third]) if lat else 0,
                np.median(lat[-third:]) if lat else 0,
            )
            encoded = len(lat)
            sustained = encoded >= 0.99 * sent and last <= 1.5 * first + 0.005
            if sustained:
                best = max(best, rate)
            run = {
                "encoder": enc,
                "rate_hz": rate,
                "achieved_rate_hz": sent / play_s,
                "sent": sent,
                "encoded": encoded,
                "dropped": sent - encoded,
                "image_to_descriptor_p50_ms": _pct(lat, 50),
                "image_to_descriptor_p95_ms": _pct(lat, 95),
                "image_to_loop_closure_p50_ms": _pct(bench.lc_lat, 50),
                "image_to_loop_closure_p95_ms": _pct(bench.lc_lat, 95),
                "loop_closures": len(bench.lc_lat),
                "lag_growth": float(last / first) if first else float("nan"),
                "sustained": bool(sustained),
            }
            results["runs"].append(run)
            progress(run)
        results.setdefault("max_sustained_rate_hz", {})[enc] = best
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(results, indent=2) + "\n")
    return results
