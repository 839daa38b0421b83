"""pose_graph: turns loop closures into drift-free poses (GTSAM iSAM2, core/pose_graph.py).

Keyframes come from place_map's latched ``vpr/keyframe_path`` (odometry poses, stamps = keyframe
image stamps) and from the query pose carried by each ``vpr/loop_closure``; keyframes are keyed by
their stamp (microseconds), which both messages carry, so place ids are never needed. Outputs:
``pose_graph/odometry`` (the odometry corrected into ``map``), ``pose_graph/map_to_odom``
(TransformStamped; also on /tf when tf2_ros is importable), ``pose_graph/keyframe_path``
(optimised keyframe poses, latched; place_map writes them back into its places) and /diagnostics.
Bad input (unknown keyframes, NaN/degenerate covariances, a closure before any keyframe) is
rejected with the reason in the log and the diagnostics; the node keeps running.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from geometry_msgs.msg import PoseStamped, TransformStamped
from lavpr_interfaces.msg import LoopClosure
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from lavpr_ros.core.pose_graph import PoseGraph, PoseGraphConfig, PoseGraphError
from lavpr_ros.graph.config import dataclass_from_params
from lavpr_ros.nodes.convert import array_to_pose, pose_to_array, sec_to_stamp, stamp_to_sec
from lavpr_ros.nodes.diagnostics import OK, WARN, Diagnostics
from lavpr_ros.nodes.params import (
    POSE_DEPTH,
    RELIABLE_INPUT,
    LiveParameters,
    Param,
    declare,
    prepare_periods,
    sensor_qos,
)
from lavpr_ros.nodes.runner import run_node

HELP = {
    "odom_sigma_xyz_m": "Odometry translation std per keyframe step [m] (plus the per-m term)",
    "odom_sigma_xyz_per_m": "Odometry translation std growth per metre travelled [m/m]",
    "odom_sigma_rot_rad": "Odometry rotation std per keyframe step [rad] (plus the per-m term)",
    "odom_sigma_rot_per_m": "Odometry rotation std growth per metre travelled [rad/m]",
    "same_place_sigma_m": "Std of the position difference of a closure without transform "
    "(sequence-matched 'same place') [m]",
    "bearing_sigma_rad": "Std of the unit-direction (bearing) of a monocular closure [rad]",
    "loop_rot_sigma_rad": "Rotation std of a direction closure without covariance [rad]",
    "robust_kernel": "Robust kernel of loop factors: cauchy, huber, dcs, geman_mcclure or none",
    "robust_k": "Robust kernel threshold [sigmas]",
    "outlier_weight": "Loop factors with a robust weight below this count as rejected",
    "loop_iterations": "Extra iSAM2 iterations after each loop closure",
    "relinearize_threshold": "iSAM2 relinearization threshold",
    "partial_relinearization": "iSAM2 checks relinearization from the root down only, "
    "stopping at cliques that moved less than the threshold (bounds the time per closure)",
    "base_T_camera": "Camera optical frame in the base frame (x, y, z, qx, qy, qz, qw)",
}

# Closures kept while their keyframes are not in the graph yet (beyond: rejected).
MAX_WAITING_LOOPS = 200

PARAMS = [
    Param(
        "pose_source",
        "odom",
        "Odometry input: 'odom' (nav_msgs/Odometry) or 'pose' (geometry_msgs/PoseStamped)",
    ),
    Param("map_frame", "map", "Frame of the corrected outputs"),
    Param("odom_frame", "", "Odometry frame (empty = the odometry messages' frame_id, else odom)"),
    Param(
        "graph_path",
        "",
        "Pose graph file (JSON) loaded at start and saved on shutdown and "
        "on the save timer; empty = <map_path>.pose_graph.json when map_path is set",
    ),
    Param("map_path", "", "place_map's map directory (names the default graph_path)"),
    Param("load_on_start", True, "Load graph_path at start when it exists"),
    Param("save_period_s", 0.0, "Save the graph every this many seconds [s]; 0 = on shutdown"),
    Param("publish_tf", True, "Broadcast map -> odom on /tf (when tf2_ros is importable)"),
    RELIABLE_INPUT,
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics messages [s]", live=True),
]


def pose_graph_params() -> list[Param]:
    """One declared parameter per PoseGraphConfig field (same names)."""
    out = []
    for f in fields(PoseGraphConfig):
        default = f.default
        if isinstance(default, tuple):
            default = [float(v) for v in default]
        out.append(Param(f.name, default, HELP[f.name]))
    return out


LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def stamp_key(sec: float) -> int:
    """Keyframe key: the stamp in microseconds (robust to float rounding of the stamps)."""
    return round(sec * 1e6)


class PoseGraphNode(Node):
    def __init__(self) -> None:
        super().__init__("pose_graph")
        self.p = declare(self, PARAMS + pose_graph_params())
        self.config: PoseGraphConfig = dataclass_from_params(PoseGraphConfig, self.p, "")
        self.group = MutuallyExclusiveCallbackGroup()
        self.counts = {"keyframes_rejected": 0, "closures": 0, "closures_rejected": 0}
        self._waiting_loops: list[LoopClosure] = []
        self.last_warning = ""
        self.odom_frame = self.p["odom_frame"]
        self.graph_path = self._graph_path()
        self.graph = self._load()
        g = self.group
        self.pub_odom = self.create_publisher(Odometry, "pose_graph/odometry", 10)
        self.pub_tf_topic = self.create_publisher(TransformStamped, "pose_graph/map_to_odom", 10)
        self.pub_path = self.create_publisher(PathMsg, "pose_graph/keyframe_path", LATCHED)
        self.tf = None
        if self.p["publish_tf"]:
            try:
                from tf2_ros import TransformBroadcaster

                self.tf = TransformBroadcaster(self)
            except ImportError:
                self.get_logger().info("tf2_ros not importable: map -> odom only on its topic")
        self.create_subscription(
            PathMsg, "vpr/keyframe_path", self._on_keyframe_path, LATCHED, callback_group=g
        )
        self.create_subscription(
            LoopClosure, "vpr/loop_closure", self._on_loop_closure, 50, callback_group=g
        )
        qos = sensor_qos(self.p["reliable_input"], POSE_DEPTH)
        if self.p["pose_source"] == "odom":
            self.create_subscription(Odometry, "odom", self._on_odom, qos, callback_group=g)
        elif self.p["pose_source"] == "pose":
            self.create_subscription(PoseStamped, "pose", self._on_pose, qos, callback_group=g)
        else:
            raise ValueError(f"pose_source must be odom or pose, not {self.p['pose_source']!r}")
        if float(self.p["save_period_s"]) > 0:
            self.create_timer(float(self.p["save_period_s"]), self.save, callback_group=g)
        self.diag = Diagnostics(self, self._diagnostics, float(self.p["diagnostics_period_s"]))
        self.live = LiveParameters(
            self,
            PARAMS + pose_graph_params(),
            self.p,
            prepare_periods({"diagnostics_period_s": (self.diag.set_period, False)}),
        )
        if len(self.graph):
            self._publish_path()

    # -- persistence ---------------------------------------------------------------------------
    def _graph_path(self) -> Path | None:
        if self.p["graph_path"]:
            return Path(self.p["graph_path"])
        if self.p["map_path"]:
            m = Path(self.p["map_path"])
            return m.with_name(m.name + ".pose_graph.json")
        return None

    def _load(self) -> PoseGraph:
        path = self.graph_path
        if path is None or not self.p["load_on_start"] or not path.is_file():
            return PoseGraph(self.config)
        try:
            g = PoseGraph.load(path, self.config)
            g.start_session()  # this run's odometry frame is not the saved one's
            self.get_logger().info(f"loaded pose graph {path}: {len(g)} keyframes")
            return g
        except (PoseGraphError, KeyError, TypeError, ValueError) as exc:
            self.get_logger().error(f"cannot load pose graph {path}: {exc}; starting empty")
            self.graph_path = None  # never overwrite a file we could not read
            return PoseGraph(self.config)

    def save(self) -> None:
        if self.graph_path is not None and len(self.graph):
            self.graph.save(self.graph_path)

    def on_shutdown(self) -> None:
        try:
            self.save()
        except OSError as exc:
            print(f"[pose_graph] cannot save {self.graph_path}: {exc}", flush=True)

    # -- inputs --------------------------------------------------------------------------------
    def _add_keyframe(self, sec: float, pose: Any) -> bool:
        key = stamp_key(sec)
        if self.graph.has(key):
            return False
        try:
            return self.graph.add_keyframe(key, sec, pose)
        except PoseGraphError as exc:
            self.counts["keyframes_rejected"] += 1
            self._warn(f"keyframe rejected: {exc}")
            return False

    def _on_keyframe_path(self, msg: PathMsg) -> None:
        added = False
        pending = self.graph.session_pending or not len(self.graph)
        last = float("-inf") if pending else self.graph.stamps[-1]
        for ps in msg.poses:
            sec = stamp_to_sec(ps.header.stamp)
            # Known keyframes (the path is re-published whole) and places older than the graph
            # (a loaded map's) are not new odometry.
            if sec > last and not self.graph.has(stamp_key(sec)):
                added |= self._add_keyframe(sec, pose_to_array(ps.pose))
                last = sec
        self.odom_frame = self.odom_frame or msg.header.frame_id
        if self._waiting_loops:
            added |= self._retry_waiting_loops()
        if added:
            self._publish_outputs()

    def _on_loop_closure(self, msg: LoopClosure) -> None:
        self.counts["closures"] += 1
        q_sec = stamp_to_sec(msg.header.stamp)
        if msg.has_poses:
            # The closure can arrive before the path that holds its query keyframe.
            self._add_keyframe(q_sec, pose_to_array(msg.query_pose))
        if self._add_loop(msg, final=False):
            self._publish_outputs()

    def _add_loop(self, msg: LoopClosure, final: bool) -> bool:
        """Add the closure's factor; True when added. A closure whose keyframe the graph does not
        know yet (no comparable query pose in it: its match was recorded in another frame, e.g.
        corrected into map; the keyframe comes with the next keyframe path) waits, bounded."""
        q_sec, m_sec = stamp_to_sec(msg.header.stamp), stamp_to_sec(msg.match_stamp)
        transform = None
        if msg.has_transform:
            t, r = msg.transform.translation, msg.transform.rotation
            transform = [t.x, t.y, t.z, r.x, r.y, r.z, r.w]
        try:
            self.graph.add_loop(
                stamp_key(q_sec),
                stamp_key(m_sec),
                transform,
                list(msg.covariance) if msg.has_transform else None,
                bool(msg.metric_scale),
            )
        except PoseGraphError as exc:
            # Only a query keyframe newer than the graph may still come with the next path; an
            # unknown match (a place in the past) never will.
            newest = self.graph.stamps[-1] if len(self.graph) else float("-inf")
            waiting = (
                not final
                and "query keyframe" in str(exc)
                and "unknown to the graph" in str(exc)
                and q_sec > newest
            )
            if waiting and len(self._waiting_loops) < MAX_WAITING_LOOPS:
                self._waiting_loops.append(msg)
                return False
            self.counts["closures_rejected"] += 1
            self._warn(f"loop closure {msg.query_id} -> {msg.match_id} rejected: {exc}")
            return False
        return True

    def _retry_waiting_loops(self) -> bool:
        """Closures that waited for their keyframes: added now, or rejected once their query
        keyframe's stamp is behind the newest keyframe (it will not come any more)."""
        waiting, self._waiting_loops = self._waiting_loops, []
        added = False
        newest = self.graph.stamps[-1] if len(self.graph) else float("-inf")
        for msg in waiting:
            final = stamp_to_sec(msg.header.stamp) <= newest
            added |= self._add_loop(msg, final=final)
        return added

    def _on_odom(self, msg: Odometry) -> None:
        self._publish_corrected(msg.header, msg.child_frame_id, pose_to_array(msg.pose.pose), msg)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._publish_corrected(msg.header, "", pose_to_array(msg.pose), None)

    # -- outputs -------------------------------------------------------------------------------
    def _publish_corrected(self, header: Any, child: str, pose: Any, odom: Odometry | None) -> None:
        self.odom_frame = self.odom_frame or header.frame_id
        try:
            corrected = self.graph.correct(pose)
        except (ValueError, RuntimeError) as exc:
            self._warn(f"odometry pose rejected: {exc}")
            return
        out = Odometry()
        out.header.stamp = header.stamp
        out.header.frame_id = self.p["map_frame"]
        out.child_frame_id = child
        out.pose.pose = array_to_pose(corrected)
        if odom is not None:
            out.pose.covariance = odom.pose.covariance
            out.twist = odom.twist  # body-frame twist is unchanged by the correction
        self.pub_odom.publish(out)
        self._publish_map_to_odom(header.stamp)

    def _publish_map_to_odom(self, stamp: Any) -> None:
        c = self.graph.map_T_odom()
        tf = TransformStamped()
        tf.header.stamp = stamp
        tf.header.frame_id = self.p["map_frame"]
        tf.child_frame_id = self.odom_frame or "odom"
        tf.transform.translation.x, tf.transform.translation.y = float(c[0]), float(c[1])
        tf.transform.translation.z = float(c[2])
        r = tf.transform.rotation
        r.x, r.y, r.z, r.w = (float(v) for v in c[3:])
        self.pub_tf_topic.publish(tf)
        if self.tf is not None:
            self.tf.sendTransform(tf)

    def _publish_outputs(self) -> None:
        self._publish_path()
        self._publish_map_to_odom(sec_to_stamp(self.graph.stamps[-1]))

    def _publish_path(self) -> None:
        msg = PathMsg()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.p["map_frame"]
        for sec, pose in zip(self.graph.stamps, self.graph.poses(), strict=True):
            ps = PoseStamped()
            ps.header.stamp = sec_to_stamp(sec)
            ps.header.frame_id = msg.header.frame_id
            ps.pose = array_to_pose(pose)
            msg.poses.append(ps)
        self.pub_path.publish(msg)

    def _warn(self, why: str) -> None:
        self.last_warning = why
        self.get_logger().warning(why, throttle_duration_sec=2.0)

    def _diagnostics(self) -> tuple[int, str, dict[str, object]]:
        t0 = time.perf_counter()
        stats = self.graph.stats()
        stats["stats_ms"] = (time.perf_counter() - t0) * 1e3
        values: dict[str, object] = {**stats, **self.counts}
        if self.last_warning:
            return WARN, self.last_warning, values
        if not len(self.graph):
            return WARN, "no keyframes yet (is place_map publishing vpr/keyframe_path?)", values
        return OK, f"{stats['keyframes']} keyframes, {stats['loop_factors']} loop factors", values


def main(args: list[str] | None = None) -> None:
    run_node(PoseGraphNode, args)


if __name__ == "__main__":
    main()
