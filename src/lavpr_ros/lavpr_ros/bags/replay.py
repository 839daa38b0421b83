"""``lavpr bag replay``: play a bag into the real node graph over DDS, record and score its outputs.

The graph is started with ``lavpr launch`` (as graph/online_run.running_graph does; skip with
``--no-launch``) on a derived parameter file: vpr_encoder subscribes to the bag's image kind
(raw or compressed), place_map takes the bag's pose kind (odom / pose / none), and when replaying
faster than real time vpr_encoder keeps every frame (``max_frame_age_s: 0``, its age check runs on
image stamps, so a sped-up bag would otherwise look stale). The bag's image and pose messages are
published as recorded (raw CDR, no re-serialization) on camera/image_raw[/compressed] and
odom/pose, paced by their log times / ``--rate-factor``, optionally with /clock. vpr/loop_closure
(and vpr/descriptor with ``--record-descriptors``) are recorded as raw CDR into a result bag
(rosbags writer), which is then read back and scored exactly like the offline run; frames the
encoder dropped are reported from its /diagnostics.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from lavpr_ros.graph.ros_client import RosClient

from .evaluate import (
    Decision,
    OfflineResult,
    build_ground_truth,
    evaluate_bag,
    load_config,
    load_poses,
    positives_per_keyframe,
    score_decisions,
    select_topics,
)
from .reader import BagSource, StampStats, deserialize, register_msgdef, stamp_ordered, typestore

RECORDED = {
    "vpr/loop_closure": "lavpr_interfaces/msg/LoopClosure",
    "vpr/loop_candidates": "lavpr_interfaces/msg/LoopClosure",
    "vpr/descriptor": "lavpr_interfaces/msg/PlaceDescriptor",
}
COMPARED = (
    "loop_closures",
    "correct",
    "precision",
    "recall",
    "auc_pr",
    "recall_at_100p",
    "auc_pr_accepted_only",
)


def _msg_class(msgtype: str) -> Any:
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def register_interface_types() -> None:
    """Teach rosbags' typestore the lavpr_interfaces messages (from the installed .msg files)."""
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("lavpr_interfaces")) / "msg"
    for msgtype in RECORDED.values():
        name = msgtype.split("/")[-1]
        register_msgdef(msgtype, "msg", (share / f"{name}.msg").read_text())


def keyframe_stamps(
    src: BagSource, image_topic: str, config: Any, buffer: Any, tol: float, use_poses: bool
) -> list[int]:
    """The keyframes the detector takes (stamps only, no encoding): for recall without offline."""
    from lavpr_ros.core.loop_closure import KeyframeSelector

    sel = KeyframeSelector(
        config.keyframe_min_distance_m,
        config.keyframe_min_rotation_rad,
        config.keyframe_max_interval_s,
        config.keyframe_min_interval_s,
    )
    out = []
    raw_iter = ((t, raw) for _, _, t, raw in src.messages([image_topic]))
    for stamp_ns, _, _ in stamp_ordered(raw_iter, 500, StampStats()):
        pose = buffer.lookup(stamp_ns / 1e9, tol) if use_poses else None
        if sel.update(stamp_ns / 1e9, pose):
            out.append(stamp_ns)
    return out


class ReplayNode(RosClient):
    """Publishes the bag's messages, records the graph's outputs (raw CDR), reads diagnostics."""

    def __init__(
        self,
        image_type: str,
        pose_type: str | None,
        clock: bool,
        record_descriptors: bool,
        on_closure: Any = None,
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        super().__init__("lavpr_bag_replay")
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        compressed = image_type.endswith("CompressedImage")
        self.image_out = "camera/image_raw/compressed" if compressed else "camera/image_raw"
        self.pub_img = self.node.create_publisher(_msg_class(image_type), self.image_out, qos)
        self.pub_pose = None
        if pose_type is not None:
            out = "odom" if pose_type.endswith("Odometry") else "pose"
            self.pub_pose = self.node.create_publisher(_msg_class(pose_type), out, qos)
        self.pub_clock = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self.pub_clock = self.node.create_publisher(Clock, "/clock", 10)
        self.lock = threading.Lock()
        self.recorded: dict[str, list[tuple[int, bytes]]] = {t: [] for t in RECORDED}
        self.record_descriptors = record_descriptors
        self.on_closure = on_closure
        self.counts = {"loop_closures": 0, "loop_candidates": 0, "descriptors": 0}
        self.last_output = time.monotonic()
        self.diag: dict[str, dict[str, str]] = {}
        for topic, msgtype in RECORDED.items():
            self.node.create_subscription(
                _msg_class(msgtype), topic, self._recorder(topic), qos, raw=True
            )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _recorder(self, topic: str):
        key = {
            "vpr/loop_closure": "loop_closures",
            "vpr/loop_candidates": "loop_candidates",
        }.get(topic, "descriptors")

        def cb(raw: bytes) -> None:
            with self.lock:
                self.counts[key] += 1
                self.last_output = time.monotonic()
                if key != "descriptors" or self.record_descriptors:
                    self.recorded[topic].append((time.time_ns(), bytes(raw)))
            if key == "loop_closures" and self.on_closure is not None:
                from lavpr_interfaces.msg import LoopClosure
                from rclpy.serialization import deserialize_message

                self.on_closure(deserialize_message(bytes(raw), LoopClosure))

        return cb

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            name = st.name.split("/")[-1]
            with self.lock:
                self.diag[name] = {kv.key: kv.value for kv in st.values}

    def wait_for_subscribers(self, timeout: float) -> None:
        """Wait for the encoder on the image topic and place_map on the pose topic (not just
        any reader: place_map also reads the camera and is up long before the encoder)."""
        from lavpr_ros.nodes.discovery import wait_for_readers

        wanted = {self.pub_img.topic_name: ["vpr_encoder"]}
        if self.pub_pose is not None:
            wanted[self.pub_pose.topic_name] = ["place_map"]
        wait_for_readers(self.node, wanted, timeout)

    def publish_clock(self, t_ns: int) -> None:
        if self.pub_clock is None:
            return
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self.pub_clock.publish(msg)


def write_result_bag(path: Path, recorded: dict[str, list[tuple[int, bytes]]]) -> Path:
    import shutil

    from rosbags.rosbag2 import StoragePlugin, Writer

    register_interface_types()
    if path.exists():
        shutil.rmtree(path)
    ts = typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        for topic, msgtype in RECORDED.items():
            conn = w.add_connection("/" + topic, msgtype, typestore=ts)
            for t, raw in recorded[topic]:
                w.write(conn, t, raw)
    return path


def online_decisions(result_bag: Path) -> tuple[list[Decision], bool]:
    """Decisions of a result bag, read like any other bag, and whether they include the rejected
    candidates (vpr/loop_candidates, recorded when place_map publishes them) or only the
    accepted loop closures."""
    src = BagSource(result_bag)
    cands = src.topics.get("/vpr/loop_candidates")
    with_rejected = cands is not None and cands.count > 0
    topic = "/vpr/loop_candidates" if with_rejected else "/vpr/loop_closure"
    out = []
    for _, msgtype, _, raw in src.messages([topic]):
        m = deserialize(raw, msgtype)
        conf = float(m.confidence)
        seq = float(m.sequence_score)
        out.append(
            Decision(
                int(m.header.stamp.sec) * 1_000_000_000 + int(m.header.stamp.nanosec),
                int(m.match_stamp.sec) * 1_000_000_000 + int(m.match_stamp.nanosec),
                int(m.query_id),
                int(m.match_id),
                float(m.score),
                None if np.isnan(seq) else seq,
                None if np.isnan(conf) else conf,
                bool(m.accepted) if with_rejected else True,
                str(m.reason) if with_rejected else "accepted",
                float(m.latency_ms),
            )
        )
    src.close()
    return out, with_rejected


def replay_bag(
    bag: str | Path,
    out_dir: str | Path,
    image_topic: str | None = None,
    pose_topic: str | None = None,
    encoder: str | None = None,
    config_file: str | Path | None = None,
    rate_factor: float = 1.0,
    clock: bool = False,
    launch: bool = True,
    record_descriptors: bool = False,
    settle_s: float = 3.0,
    gt_radius: float | None = None,
    gt_file: str | Path | None = None,
    offline: bool = True,
    verbose: bool = False,
    progress: bool = True,
    log: Any = print,
    on_closure: Any = None,
    prior_map: str | Path | None = None,
    plots: bool = False,
    pose_graph: Any = None,
) -> dict[str, Any]:
    """Replay ``bag`` into the graph and score it; ``on_closure(msg)`` sees each LoopClosure
    as it is published. ``prior_map``: a saved map place_map starts from (multi-session): a
    closure to one of its places is scored by the pose saved with that place (same frame as the
    bag's ground truth assumed); the offline run, which has no prior map, is skipped. ``plots``:
    the PR curve, trajectory and match PNGs of ``bag eval`` for each run, in out_dir/online and
    out_dir/offline. ``pose_graph`` (a bags.pose_graph_eval.DriftModel): the odometry is
    replayed drifted, the pose_graph node runs too, and its optimised keyframe path is scored
    against the bag's own poses (report["pose_graph"])."""
    from tqdm import tqdm

    from lavpr_ros.bags.evaluate import config_encoder
    from lavpr_ros.core.metrics import latency_percentiles

    encoder = encoder or config_encoder(config_file)
    from lavpr_ros.graph.description import default_config_file
    from lavpr_ros.graph.online_run import derived_config, env_for_run, running_graph
    from lavpr_ros.graph.processes import ProcessGroup

    if rate_factor <= 0:
        raise ValueError("--rate-factor must be > 0")
    bag, out_dir = Path(bag), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = BagSource(bag)
    img, pose = select_topics(src, image_topic, pose_topic, log)
    pose_type = pose.msgtype
    if pose_type == "geometry_msgs/msg/PoseWithCovarianceStamped":
        log("note: place_map takes Odometry or PoseStamped; replaying without poses")
        pose_type = None
    compressed = img.msgtype.endswith("CompressedImage")
    overrides: dict[str, dict[str, Any]] = {
        # A replay is an evaluation: lossless (reliable) inputs, unlike a live camera.
        "vpr_encoder": {
            "subscribe_raw": not compressed,
            "subscribe_compressed": compressed,
            "reliable_input": True,
        },
        "place_map": {
            "pose_source": "none"
            if pose_type is None
            else ("odom" if pose_type.endswith("Odometry") else "pose"),
            # Rejected candidates too, so the online run has a full PR curve.
            "publish_candidates": True,
            "reliable_input": True,
            # Every frame's pose is in the bag and comes (reliably): wait for it rather than
            # add a place without it when DDS delivers odometry late on a loaded machine.
            "pose_wait_s": 5.0,
        },
    }
    if rate_factor > 1.0:
        overrides["vpr_encoder"]["max_frame_age_s"] = 0.0
    # The parameter file states the encoder that runs (the launch argument sets the same).
    overrides["vpr_encoder"]["encoder"] = encoder
    prior = None
    if prior_map:
        from lavpr_ros.core.place_map import PlaceMap

        prior = PlaceMap.load(prior_map)  # verified before anything starts
        overrides["place_map"].update(
            map_path=str(Path(prior_map).resolve()), load_on_start=True, save_on_shutdown=False
        )
        if offline:
            log("prior map given: no offline run (the offline pipeline starts from no map)")
            offline = False
    if pose_graph is not None:
        if pose_type is None:
            raise ValueError(f"{bag} has no odometry/pose topic: nothing for the pose graph")
        overrides["pose_graph"] = {
            "pose_source": overrides["place_map"]["pose_source"],
            "reliable_input": True,
        }
    params = derived_config(
        config_file or default_config_file(), overrides, out_dir / "params.yaml"
    )
    config, pm_params, _ = load_config(params)
    tol = float(pm_params.get("pose_tolerance_s", 0.1))

    off: OfflineResult | None = None
    if offline:
        log("offline run (same bag, same parameters) ...")
        off = evaluate_bag(
            bag,
            img.topic,
            pose.topic,
            encoder,
            params,
            gt_radius,
            gt_file,
            progress=progress,
            log=lambda s: None,
        )

    topics = [img.topic] + ([pose.topic] if pose_type else [])
    n_images = src.topics[img.topic].count
    env = env_for_run() if launch else None
    group = ProcessGroup(env=env, echo=verbose) if launch else None
    node = ReplayNode(img.msgtype, pose_type, clock, record_descriptors, on_closure)
    published = {"images": 0, "poses": 0}
    drifted: dict[int, np.ndarray] = {}
    graph_paths: list[Any] = []
    if pose_graph is not None:
        from .pose_graph_eval import drift, latched_qos

        p_stamps, p_list, _, _, _ = load_poses(src, pose)
        drifted = dict(zip(p_stamps, drift(np.array(p_list), pose_graph), strict=True))
        from nav_msgs.msg import Path as PathMsg

        node.node.create_subscription(
            PathMsg, "pose_graph/keyframe_path", graph_paths.append, latched_qos()
        )
    t_play = 0.0
    try:
        ctx = (
            running_graph(
                group,
                {
                    "image_model": encoder,
                    "start_text_nav": "false",
                    "start_pose_graph": "true" if pose_graph is not None else "false",
                    "config_file": str(params),
                    "use_sim_time": "true" if clock else "false",
                },
            )
            if launch
            else contextlib.nullcontext()
        )
        with ctx:
            node.wait_for_subscribers(60.0)
            log(f"playing {n_images} images at x{rate_factor:g} into {node.image_out} ...")
            t0_wall = time.monotonic()
            t0_bag = None
            bar = tqdm(total=n_images, desc="replay", unit="img", disable=not progress, leave=False)
            for topic, _, log_ns, raw in src.messages(topics):
                t0_bag = log_ns if t0_bag is None else t0_bag
                delay = t0_wall + (log_ns - t0_bag) / 1e9 / rate_factor - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                node.publish_clock(log_ns)
                if topic == img.topic:
                    node.pub_img.publish(raw)
                    published["images"] += 1
                    bar.update(1)
                else:
                    assert node.pub_pose is not None
                    node.pub_pose.publish(
                        _drifted_pose(raw, pose_type, drifted) if drifted else raw
                    )
                    published["poses"] += 1
            bar.close()
            t_play = time.monotonic() - t0_wall
            # Let the graph drain: stop once nothing new came for settle_s (bounded).
            deadline = time.monotonic() + 60.0 + settle_s
            while time.monotonic() < deadline:
                with node.lock:
                    quiet = time.monotonic() - node.last_output
                    done = node.counts["descriptors"] >= published["images"]
                # Every frame encoded: a short quiet spell ends it. Otherwise the encoder may still
                # be working through its lossless queue: only a long silence means it is stuck.
                if (done and quiet >= min(settle_s, 1.5)) or quiet >= max(settle_s, 10.0):
                    break
                time.sleep(0.1)
            time.sleep(1.2)  # one more diagnostics period for final counters
            if pose_graph is not None:
                _wait_for_pose_graph(node, graph_paths)
    finally:
        if group is not None:
            group.stop_all()
        node.close()
    damage = src.damage
    result_bag = write_result_bag(out_dir / "result_bag", node.recorded)

    # Score the result bag exactly as the offline decisions.
    decisions, with_rejected = online_decisions(result_bag)
    if off is not None:
        gt, kf = off.gt, off.kf_stamps_ns
    else:
        ps, pl, _, _, buffer = load_poses(src, pose)
        gt = build_ground_truth(bag, pose, ps, pl, gt_file, gt_radius, tol)
        kf = keyframe_stamps(src, img.topic, config, buffer, tol, pose_type is not None)
    if prior is not None and gt is not None:
        gt = with_places(gt, prior)
    positives = positives_per_keyframe(kf, gt, config) if gt else None
    sequences = config.sequence_length > 1
    online, curve = score_decisions(decisions, gt, positives, sequences, with_candidates=False)
    if not with_rejected:  # a graph without publish_candidates: accepted closures only
        online["auc_pr"] = None
        online["pr_note"] = "online: accepted closures only; compare auc_pr_accepted_only"
    enc_diag = node.diag.get("vpr_encoder", {})
    pm_diag = node.diag.get("place_map", {})
    online.update(
        mode="online",
        images_published=published["images"],
        poses_published=published["poses"],
        descriptors_received=node.counts["descriptors"],
        frames_not_encoded=published["images"] - node.counts["descriptors"],
        encoder_dropped_frames=_int(enc_diag.get("dropped_frames")),
        encoder_rejected_frames=_int(enc_diag.get("rejected_frames")),
        place_map_keyframes=_int(pm_diag.get("keyframes")),
        place_map_rejected=_int(pm_diag.get("rejected")),
        play_wall_s=t_play,
        rate_factor=rate_factor,
        latency_ms={"decision": latency_percentiles([d.latency_ms for d in decisions])},
        result_bag=str(result_bag),
        damaged=[damage.__dict__] if damage else [],
    )
    if prior is not None:
        old = _place_stamps(prior)
        online.update(
            prior_map=str(prior_map),
            prior_map_places=len(prior),
            closures_to_prior_map=sum(
                1 for d in decisions if d.accepted and d.match_stamp_ns in old
            ),
        )
    encoder_ran = enc_diag.get("model_id") or enc_diag.get("encoder") or encoder
    online["encoder"] = encoder_ran
    report: dict[str, Any] = {"bag": str(bag), "params": str(params), "online": online}
    if pose_graph is not None:
        from .pose_graph_eval import score_online_path

        report["pose_graph"] = score_online_path(
            graph_paths[-1] if graph_paths else None, src, pose, drifted, out_dir
        )
    if off is not None:
        report["offline"] = off.metrics
        report["difference"] = {k: _diff(online.get(k), off.metrics.get(k)) for k in COMPARED}
    if plots:
        from .report import write_offline_report

        on_res = OfflineResult(
            online,
            decisions,
            curve,
            kf,
            gt,
            img.topic,
            img.msgtype,
            src,
            off.frame_stamps_ns if off is not None else list(kf),
        )
        outputs = write_offline_report(on_res, out_dir / "online", f"bag replay: {bag.name}")
        if off is not None:
            write_offline_report(off, out_dir / "offline", f"bag replay: {bag.name} (offline)")
        report["outputs"] = {k: str(v) for k, v in outputs.items()}
    return report


def _place_stamps(m: Any) -> set[int]:
    return {round(float(t) * 1e9) for t in m.stamps}


def _wait_for_pose_graph(node: Any, graph_paths: list[Any], timeout_s: float = 60.0) -> None:
    """The pose graph optimises behind place_map (iSAM2 per keyframe-path update): wait until
    its optimised path holds every keyframe place_map reports, or it stopped growing for 15 s
    (bounded), so the score is of the whole run and not of a snapshot taken mid-way."""
    deadline = time.monotonic() + timeout_s
    last, changed = -1, time.monotonic()
    while time.monotonic() < deadline:
        with node.lock:
            keyframes = _int(node.diag.get("place_map", {}).get("keyframes"))
        have = len(graph_paths[-1].poses) if graph_paths else 0
        if keyframes and have >= keyframes:
            return
        if have != last:
            last, changed = have, time.monotonic()
        elif time.monotonic() - changed > 15.0:
            return
        time.sleep(0.2)


def with_places(gt: Any, m: Any) -> Any:
    """The ground truth plus the positions saved with a prior map's places (at their stamps),
    so closures to a previous session's places are scored by where those places were."""
    import dataclasses

    stamps, xyz = [], []
    for p in m.places:
        if p.pose is not None:
            stamps.append(round(p.stamp * 1e9))
            xyz.append(p.pose[:3])
    if not stamps:
        return gt
    all_s = np.concatenate([gt.stamps, np.asarray(stamps, dtype=np.int64)])
    all_x = np.concatenate([gt.xyz, np.asarray(xyz, dtype=np.float64)])
    order = np.argsort(all_s, kind="stable")
    return dataclasses.replace(gt, stamps=all_s[order], xyz=all_x[order])


def _drifted_pose(raw: bytes, pose_type: str, drifted: dict[int, np.ndarray]) -> Any:
    """The bag's pose message with its pose replaced by the drifted one (same stamp)."""
    from rclpy.serialization import deserialize_message

    from lavpr_ros.nodes.convert import array_to_pose

    msg = deserialize_message(bytes(raw), _msg_class(pose_type))
    stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    p = drifted.get(stamp)
    if p is None:
        return msg
    if pose_type.endswith("Odometry"):
        msg.pose.pose = array_to_pose(p)
    else:
        msg.pose = array_to_pose(p)
    return msg


def _int(v: Any) -> int | None:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


def _diff(a: Any, b: Any) -> float | None:
    try:
        return float(a) - float(b)
    except (TypeError, ValueError):
        return None


def replay_command(args: argparse.Namespace) -> int:
    from .report import markdown_table, print_table, write_json

    bag = Path(args.bag)
    out = Path(args.out or f"results/bag-replay-{bag.name}")
    report = replay_bag(
        bag,
        out,
        args.image_topic,
        args.pose_topic,
        args.encoder,
        args.config,
        args.rate_factor,
        args.clock,
        not args.no_launch,
        args.record_descriptors,
        args.settle,
        args.gt_radius,
        args.ground_truth,
        offline=not args.no_offline,
        verbose=args.verbose,
        progress=not args.quiet,
        prior_map=args.prior_map,
        plots=True,
        pose_graph=_drift_model(args),
    )
    cols = {"online (DDS graph)": report["online"]}
    if "offline" in report:
        cols["offline (core)"] = report["offline"]
    write_json(out / "metrics.json", report)
    (out / "report.md").write_text(
        f"# bag replay: {bag.name}\n\n" + markdown_table(cols), encoding="utf-8"
    )
    print_table(cols, f"lavpr bag replay {bag.name} (x{args.rate_factor:g})")
    o = report["online"]
    print(
        f"images published {o['images_published']}, descriptors received "
        f"{o['descriptors_received']}, encoder dropped {o['encoder_dropped_frames']}, "
        f"place_map keyframes {o['place_map_keyframes']}"
    )
    print(f"result bag: {o['result_bag']}; report: {out / 'metrics.json'} {out / 'report.md'}")
    pngs = [p for p in report.get("outputs", {}).values() if p.endswith(".png")]
    print("plots: " + "  ".join(pngs + [str(p) for p in sorted((out / "offline").glob("*.png"))]))
    pg = report.get("pose_graph")
    if pg:
        for name in ("drifted", "pose_graph"):
            m = pg[name]
            print(
                f"pose graph online: {name:10s} ATE rmse {m['ate_rmse_m']:.2f} m median "
                f"{m['ate_median_m']:.2f} m, RPE rmse {m['rpe_rmse_m']:.3f} m"
            )
        print(f"pose graph online: {pg['keyframes']} keyframes; plots in {out}")
    return 0


def _drift_model(args: argparse.Namespace) -> Any:
    if not getattr(args, "pose_graph", False):
        return None
    from .pose_graph_eval import DriftModel

    return DriftModel(args.scale_error, args.heading_rw, args.seed)
