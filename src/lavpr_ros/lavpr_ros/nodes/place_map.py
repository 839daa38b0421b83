"""place_map: keyframes, loop closures, the persistent map of places and its services.

Descriptors (vpr/descriptor) are paired with the robot pose at their image stamp (odom, pose,
pose_cov or tf, interpolated within a tolerance; a descriptor waits at most ``pose_wait_s`` for
its pose and is then used without one), run through the core loop-closure detector, and accepted
decisions are published on vpr/loop_closure. The map is saved and loaded atomically by the core.

Frames (REP-105): each place keeps the frame its pose came in (the pose messages' header, or
``map_frame`` for tf); nothing is relabelled. Outputs carry each place's own frame.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from lavpr_interfaces.msg import (
    GeoEstimate,
    LoopClosure,
    PlaceDescriptor,
    RetrievedPlace,
    RetrievedPlaces,
)
from lavpr_interfaces.srv import AnnotatePlace, LoadMap, QueryPlaces, SaveMap
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from visualization_msgs.msg import MarkerArray

from lavpr_ros.core.frame_pipeline import REJECTED, FramePipeline, FrameRecord, PipelineOptions
from lavpr_ros.core.geo import scan_maps, select_map
from lavpr_ros.core.loop_closure import (
    NO_PLACE_ID,
    STRUCTURAL_FIELDS,
    LoopClosureConfig,
    LoopClosureDetector,
    query_label,
)
from lavpr_ros.core.place_map import ODOM_WARNING, PlaceMap, is_odom_frame
from lavpr_ros.core.pose_buffer import PoseBuffer
from lavpr_ros.core.retrieval import MODES as RETRIEVAL_MODES
from lavpr_ros.core.retrieval import PlaceRetriever
from lavpr_ros.core.text_retrieval import TextPlaceIndex
from lavpr_ros.core.verification import LIVE_PARAMETERS as VERIFICATION_LIVE
from lavpr_ros.core.verification import PARAMETERS as VERIFICATION_PARAMETERS
from lavpr_ros.core.verification import VERIFIED, geometry_from_params, verifier_from_params
from lavpr_ros.graph.config import dataclass_from_params
from lavpr_ros.nodes.convert import array_to_pose, pose_to_array, sec_to_stamp, stamp_to_sec
from lavpr_ros.nodes.diagnostics import (
    ERROR,
    OK,
    WARN,
    Diagnostics,
    LatencyMeter,
    RateMeter,
    RecentWarning,
)
from lavpr_ros.nodes.lifecycle import AUTOSTART, ManagedNode, state_label
from lavpr_ros.nodes.markers import build_markers
from lavpr_ros.nodes.params import (
    LATCHED,
    POSE_DEPTH,
    RELIABLE_INPUT,
    LiveParameters,
    Param,
    declare,
    positive_period,
    require,
    sensor_qos,
)
from lavpr_ros.nodes.runner import run_node

LC_PREFIX = "loop_closure."
VERIFICATION_PARAMS = [
    Param(k, d, help_, live=k in VERIFICATION_LIVE)
    for k, (d, help_) in VERIFICATION_PARAMETERS.items()
]
NO_PLACE = NO_PLACE_ID  # LoopClosure.query_id when the query keyframe was not added
POSE_SOURCES = ("odom", "pose", "pose_cov", "tf", "none")

PARAMS = [
    Param(
        "map_path",
        "",
        "Place map directory: loaded at start (load_on_start) and the default "
        "target of save_map/load_map; empty = start with an empty map",
    ),
    Param("load_on_start", True, "Load map_path at start-up when it holds a map"),
    Param("save_on_shutdown", False, "Save the map to map_path when the node shuts down"),
    Param(
        "index_type",
        "auto",
        "faiss index of a new map: auto (flat below 50k places, then pcapq; see "
        "docs/scale.md), flat (exact), hnsw, ivfpq, hnswpq or pcapq (PCA + 4-bit fast-scan PQ)",
    ),
    Param(
        "pose_source",
        "odom",
        "Pose input: 'odom' (nav_msgs/Odometry on odom), 'pose' (geometry_msgs/PoseStamped on "
        "pose), 'pose_cov' (geometry_msgs/PoseWithCovarianceStamped on pose_cov, e.g. "
        "amcl_pose or a SLAM pose), 'tf' (map_frame -> base_frame at each image stamp; needs "
        "tf2_ros) or 'none' (time-based keyframing). Places keep the frame their pose came in: "
        "poses in odom do not survive a restart",
    ),
    Param("map_frame", "map", "pose_source tf: the frame places are recorded in"),
    Param("base_frame", "base_link", "pose_source tf: the robot's frame"),
    Param(
        "pose_tolerance_s",
        0.1,
        "Largest gap between an image stamp and the poses used to interpolate its pose [s]",
    ),
    Param(
        "pose_wait_s",
        0.5,
        "How long a descriptor waits for its pose before it is used without one [s, wall time]",
    ),
    Param(
        "pose_startup_wait_s",
        2.0,
        "While no pose has arrived yet, how long descriptors wait for the first one (odometry "
        "starting after the camera) before places are added without poses [s, wall time]",
    ),
    Param(
        "publish_candidates",
        False,
        "Also publish every keyframe's best candidate, accepted or not (with the reason), on "
        "vpr/loop_candidates: for PR curves of online runs",
    ),
    Param(
        "time_jump_reset_s",
        1.0,
        "A descriptor older than the last keyframe by more than this resets keyframing and "
        "sequence state (bag restarted, simulation reset) [s]; smaller steps back are dropped "
        "as out of order",
    ),
    Param(
        "model_id",
        "",
        "Model id the map must be built with (e.g. the vpr_encoder's model); empty = the loaded "
        "map's model, else the model of the descriptor stream once model_confirm_count "
        "consecutive descriptors agree on it",
    ),
    Param(
        "model_confirm_count",
        3,
        "Consecutive descriptors of one model needed before it becomes a new map's model (a "
        "stray descriptor of another model cannot lock the map)",
    ),
    Param(
        "max_clock_skew_s",
        10.0,
        "Descriptors and poses stamped later than the node clock by more than this are refused "
        "[s]; <= 0 disables the check",
    ),
    Param(
        "max_pose_lead_s",
        60.0,
        "Poses stamped later than both the newest descriptor and the newest pose by more than "
        "this are refused [s] (a bogus future stamp would end every later descriptor's wait "
        "for its pose); <= 0 disables the check",
    ),
    Param(
        "no_pose_warn_s",
        5.0,
        "Warn (log and diagnostics) when no pose arrived for this long while descriptors do "
        "[s, wall time]",
    ),
    Param("text_model", "", "Text encoder manifest for the query_places service (empty = off)"),
    Param("query_top_k", 5, "Places returned by query_places when top_k is 0", live=True),
    Param(
        "query_mode",
        "text",
        "query_places mode when a request names none: text (descriptions), image (the latest "
        "camera descriptor), cross_modal (text vs image descriptors) or fusion",
        live=True,
    ),
    Param(
        "cross_modal_model",
        "",
        "Cross-modal text model manifest (text -> this map's image-descriptor space) for "
        "query_places mode cross_modal; finds places nobody described (empty = off)",
    ),
    Param(
        "fusion_model",
        "",
        "Fusion model manifest (kind fusion) for query_places mode fusion: the latest camera "
        "descriptor + the request text as its description (needs text_model; empty = off)",
    ),
    Param("marker_period_s", 1.0, "Period of vpr/markers [s]; <= 0 disables markers", live=True),
    RELIABLE_INPUT,
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics messages [s]", live=True),
    Param(
        "maps_root",
        "",
        "Folder of saved maps tagged with country/city (lavpr map tag); with auto_select_map, "
        "a vpr/geo_estimate arriving while no map is loaded loads the matching one; empty = off",
    ),
    Param(
        "auto_select_map",
        True,
        "Load the maps_root map matching a geo estimate (city match beats country match) when "
        "no map is loaded and nothing is mapped yet",
    ),
    Param(
        "sequence_model",
        "",
        "Sequence encoder manifest (kind sequence, SeqNet): loop closures become a hierarchical "
        "search - shortlist by sequence descriptor, re-rank by sequence matching (empty = off)",
    ),
    Param("sequence_shortlist_k", 20, "Places shortlisted by sequence descriptor (sequence_model)"),
    Param(
        "keyframe_path_period_s",
        1.0,
        "Smallest interval between vpr/keyframe_path updates (latched nav_msgs/Path of the "
        "keyframe poses, sent when the map changed) [s]; <= 0 disables it",
        live=True,
    ),
    AUTOSTART,
]


LC_HELP = {
    "mode": "'slam' (keyframes join the map, recent ones excluded) or 'localisation' (fixed "
    "prior map: no additions, no temporal exclusion)",
    "top_k": "Single-frame candidates reported per keyframe",
    "exclude_recent_s": "Places stamped within this many seconds are never matched [s]",
    "exclude_recent_n": "Nor the newest this-many keyframes (keep above sequence_length)",
    "sequence_length": "Keyframes per sequence (SeqSLAM-style); 0 or 1 = single-frame",
    "velocities": "Relative velocities (query keyframes per map place) searched by sequences",
    "min_sequence_frames": "Keyframes needed before a sequence decision may be accepted "
    "(-1 = sequence_length // 2)",
    "sequence_exclusion_window": "Map places either side of the best sequence ignored when "
    "taking the second best (confidence)",
    "contrast_normalise": "Local contrast normalisation of similarities (false = raw cosine)",
    "contrast_window": "Map-side contrast normalisation radius [places]",
    "query_window": "Query-side normalisation window [keyframes] (0 = off)",
    "std_floor": "Floor of the local standard deviation, relative to the column's spread",
    "sequence_search": "Where sequences are scored: full (every eligible place), shortlist (near "
    "the index's candidates; docs/scale.md) or auto (shortlist from shortlist_min_places places)",
    "shortlist_min_places": "Eligible places from which sequence_search auto scores shortlists",
    "shortlist_candidates": "Places retrieved per keyframe whose neighbourhoods the shortlist "
    "scores",
    "min_score": "Single-frame cosine the match must reach",
    "min_sequence_score": "Sequence score (mean normalised similarity) the match must reach",
    "min_confidence": "Margin of the best sequence over the best elsewhere the match must reach",
    "min_confidence_places": "Eligible places up to which min_confidence applies as it is",
    "min_confidence_per_decade": "How much less margin a larger map asks per decade of places "
    "beyond min_confidence_places (the best competing sequence scores higher among more places)",
    "max_pose_distance_m": "Pose-consistency gate: reject matches whose stored pose is farther "
    "than this from the current pose [m] (-1 = off; odometry drifts)",
    "keyframe_min_distance_m": "A new keyframe needs this much travel since the last [m]",
    "keyframe_min_rotation_rad": "... or this much rotation [rad]",
    "keyframe_max_interval_s": "... or this much time, when there is no pose [s]",
    "keyframe_min_interval_s": "Never two keyframes closer than this in time [s]",
}


def loop_closure_params() -> list[Param]:
    """One declared parameter per LoopClosureConfig field, prefixed ``loop_closure.``."""
    out = []
    for f in dataclasses.fields(LoopClosureConfig):
        default: Any = f.default
        if default is None:  # ROS parameters have no None: negative = off/automatic
            default = -1 if "int" in str(f.type) else -1.0
        elif isinstance(default, tuple):
            default = [float(v) for v in default]
        live = f.name not in STRUCTURAL_FIELDS  # thresholds; the rest shapes the matcher
        out.append(Param(LC_PREFIX + f.name, default, LC_HELP.get(f.name, f.name), live=live))
    return out


def all_params() -> list[Param]:
    """Every parameter place_map declares (its own, loop_closure.*, verification.*, camera.*)."""
    return PARAMS + loop_closure_params() + VERIFICATION_PARAMS


class PlaceMapNode(ManagedNode):
    """Managed node: configure loads the models and the map, activate subscribes the inputs;
    cleanup and shutdown save the map (when configured to) before releasing it."""

    def __init__(self) -> None:
        super().__init__("place_map")
        self.p = declare(self, all_params())
        require(
            self.p["pose_source"] in POSE_SOURCES,
            f"pose_source must be one of {', '.join(POSE_SOURCES)}, not {self.p['pose_source']!r}",
        )
        self.config = dataclass_from_params(LoopClosureConfig, self.p, LC_PREFIX)
        self.group = MutuallyExclusiveCallbackGroup()
        self.edges: list[tuple[int, int]] = []
        self.save_allowed = True
        self.failure = ""  # why the last configure failed
        self.counts = {"descriptors": 0, "rejected_messages": 0, "keyframes": 0, "loop_closures": 0}
        self.warning = RecentWarning()
        self.pipeline: FramePipeline | None = None
        self.in_rate = RateMeter()
        self.latency = LatencyMeter()
        self.text_index: TextPlaceIndex | None = None
        self.tf: Any = None
        self.geo_map = ""  # the map loaded for a geo estimate (then estimates are ignored)
        self.marker_timer: Any = None
        self.path_timer: Any = None
        self.pub_path: Any = None
        self.pub_candidates: Any = None
        self._outputs: list[Any] = []  # publishers, services, timers made by configure
        self.diag = Diagnostics(self, self._diagnostics, float(self.p["diagnostics_period_s"]))
        self.live = LiveParameters(self, all_params(), self.p, self._prepare_live)

    # -- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # a model or map that cannot be used: stay unconfigured
            self.failure = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self.release()
            return TransitionCallbackReturn.FAILURE
        self.failure = ""
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        self.save_allowed = True
        self.text_index = None
        if self.p["text_model"]:
            from lavpr_ros.core.text_encoder import TextEncoder

            self.text_index = TextPlaceIndex(TextEncoder(self.p["text_model"]))
        self._init_language_modes()
        self._init_sequence_and_path()
        self.pipeline = FramePipeline(
            self.config,
            PipelineOptions(
                use_poses=self.p["pose_source"] != "none",
                pose_tolerance_s=float(self.p["pose_tolerance_s"]),
                pose_wait_s=float(self.p["pose_wait_s"]),
                pose_startup_wait_s=float(self.p["pose_startup_wait_s"]),
                time_jump_reset_s=float(self.p["time_jump_reset_s"]),
                max_clock_skew_s=float(self.p["max_clock_skew_s"]),
                max_pose_lead_s=float(self.p["max_pose_lead_s"]),
                model_confirm_count=int(self.p["model_confirm_count"]),
                expected_model_id=str(self.p["model_id"]),
                no_pose_warn_s=float(self.p["no_pose_warn_s"]),
            ),
            map_factory=self._new_map,
            poses=PoseBuffer(max_age_s=60.0),
            detector_kwargs=self._sequence_kwargs(),
            verifier=verifier_from_params(self.p),
        )
        if self.p["pose_source"] == "tf":
            from lavpr_ros.nodes.tf_pose import TfLookup

            self.tf = TfLookup(self, "pose_source 'tf'")  # RuntimeError without tf2_ros
        self._maybe_load_on_start()
        g = self.group
        self.pub_lc = self.create_publisher(LoopClosure, "vpr/loop_closure", 50)
        if self.p["publish_candidates"]:
            self.pub_candidates = self.create_publisher(LoopClosure, "vpr/loop_candidates", 200)
        self.pub_markers = self.create_publisher(MarkerArray, "vpr/markers", 1)
        self.pub_described = self.create_publisher(RetrievedPlaces, "vpr/described_places", LATCHED)
        self._outputs = [
            p
            for p in (self.pub_lc, self.pub_candidates, self.pub_markers, self.pub_described)
            if p is not None
        ]
        self._outputs += [
            self.create_service(SaveMap, "save_map", self._srv_save, callback_group=g),
            self.create_service(LoadMap, "load_map", self._srv_load, callback_group=g),
            self.create_service(
                AnnotatePlace, "annotate_place", self._srv_annotate, callback_group=g
            ),
            self.create_service(QueryPlaces, "query_places", self._srv_query, callback_group=g),
        ]
        self._set_marker_period(float(self.p["marker_period_s"]))
        self._publish_described()

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        g = self.group
        qos = sensor_qos(self.p["reliable_input"], POSE_DEPTH)
        self.inputs = [
            self.create_subscription(
                PlaceDescriptor, "vpr/descriptor", self._on_descriptor, 200, callback_group=g
            )
        ]
        source = self.p["pose_source"]
        pose_inputs = {
            "odom": (Odometry, "odom", self._on_odom),
            "pose": (PoseStamped, "pose", self._on_pose),
            "pose_cov": (PoseWithCovarianceStamped, "pose_cov", self._on_pose_cov),
        }
        if source in pose_inputs:
            msg_type, topic, callback = pose_inputs[source]
            self.inputs.append(
                self.create_subscription(msg_type, topic, callback, qos, callback_group=g)
            )
        self._init_verification_inputs()
        self._subscribe_corrected_poses()
        if self.p["maps_root"] and self.p["auto_select_map"]:
            self.inputs.append(
                self.create_subscription(
                    GeoEstimate,
                    "vpr/geo_estimate",
                    self._on_geo_estimate,
                    LATCHED,
                    callback_group=g,
                )
            )
        self.inputs.append(self.create_timer(0.02, self._flush_pending, callback_group=g))
        print(f"[{self.get_name()}] ready", flush=True)
        return super().on_activate(state)

    def inputs_stopped(self) -> None:
        if self.pipeline is not None:
            self._handle(self.pipeline.flush(time.monotonic(), force=True))

    def release(self) -> None:
        """Save the map when configured to (save_on_shutdown), then let go of it, the models
        and the outputs: cleanup must not lose what was mapped."""
        if self.pipeline is not None:
            self._save_on_exit()
        try:  # at exit the ROS context may already be gone: the map is saved either way
            for handle in self._outputs:
                if hasattr(handle, "srv_type"):
                    self.destroy_service(handle)
                else:
                    self.destroy_publisher(handle)
            for timer in (self.marker_timer, self.path_timer):
                if timer is not None:
                    self.destroy_timer(timer)
            if self.pub_path is not None:
                self.destroy_publisher(self.pub_path)
        except Exception:
            pass
        self._outputs = []
        self.pub_candidates = self.marker_timer = self.path_timer = self.pub_path = None
        self.pipeline = None
        self.text_index = None
        self.tf = None
        self.geo_map = ""

    # -- live parameters -----------------------------------------------------------------------
    def _prepare_live(self, new: dict[str, Any], changed: set[str]) -> Callable[[], None]:
        """Build what new parameter values mean (ValueError: refused, nothing changed); the
        returned commit installs it: the detector's config (from the next descriptor on), the
        verifier's thresholds, timers. query_top_k/query_mode are read from self.p at use.
        Unconfigured, the values are only checked: configure reads them."""
        steps: list[Callable[[], None]] = []
        if any(n.startswith(LC_PREFIX) for n in changed):
            config = dataclass_from_params(LoopClosureConfig, new, LC_PREFIX)  # validates
            steps.append(lambda: self._apply_loop_closure(config))
        if any(n.startswith("verification.") for n in changed):
            require(
                bool(new["verification.enabled"]),
                "verification is off (verification.enabled is false)",
            )
            geometry = geometry_from_params(new)  # validates
            verifier = self.pipeline.verifier if self.pipeline is not None else None
            if verifier is not None:
                steps.append(lambda: setattr(verifier, "geometry", geometry))
        if "query_top_k" in changed:
            require(int(new["query_top_k"]) >= 1, "query_top_k must be >= 1")
        if "query_mode" in changed:
            mode = str(new["query_mode"]).replace("-", "_")
            require(
                mode in RETRIEVAL_MODES,
                f"query_mode must be one of {', '.join(RETRIEVAL_MODES)}, got {mode!r}",
            )
        configured = self.pipeline is not None
        if "marker_period_s" in changed:
            period = positive_period(new, "marker_period_s", allow_off=True)
            if configured:
                steps.append(lambda: self._set_marker_period(period))
        if "keyframe_path_period_s" in changed:
            path_period = positive_period(new, "keyframe_path_period_s", allow_off=True)
            if configured:
                steps.append(lambda: self._set_path_period(path_period))
        if "diagnostics_period_s" in changed:
            diag_period = positive_period(new, "diagnostics_period_s")
            steps.append(lambda: self.diag.set_period(diag_period))

        def commit() -> None:
            for step in steps:
                step()

        return commit

    def _apply_loop_closure(self, config: LoopClosureConfig) -> None:
        if self.pipeline is not None:
            self.pipeline.update_config(config)
        self.config = config

    def _set_marker_period(self, period: float) -> None:
        if self.marker_timer is not None:
            self.destroy_timer(self.marker_timer)
            self.marker_timer = None
        if period > 0:
            self.marker_timer = self.create_timer(
                period, self._publish_markers, callback_group=self.group
            )

    # -- map lifecycle -------------------------------------------------------------------------
    def _maybe_load_on_start(self) -> None:
        path = self.p["map_path"]
        if not (path and self.p["load_on_start"]):
            return
        target = Path(path)
        if target.is_dir() and not any(target.iterdir()):
            self.get_logger().info(f"no map at {path} yet (empty folder): starting an empty map")
            return
        try:  # the core finds the map or what an interrupted save left of it
            self._install_map(PlaceMap.load(path))
            self.get_logger().info(f"loaded map {path}: {len(self.map or [])} places")
            self._warn_odom(f"map {path}")
        except FileNotFoundError:
            self.get_logger().info(f"no map at {path} yet: starting an empty map")
        except Exception as exc:
            self.save_allowed = False
            self.get_logger().error(
                f"cannot load map {path}: {exc}. Starting with an empty map; it will NOT be "
                "saved over map_path on shutdown (use save_map with another path)."
            )

    @property
    def map(self) -> PlaceMap | None:
        return self.pipeline.map if self.pipeline is not None else None

    @property
    def detector(self) -> LoopClosureDetector | None:
        return self.pipeline.detector if self.pipeline is not None else None

    def _new_map(self, dim: int, model_id: str) -> PlaceMap:
        # The map-level frame: that of places added without a pose frame (never relabels one).
        assert self.pipeline is not None
        frame = self.pipeline.pose_frame or (
            self.p["map_frame"] if self.p["pose_source"] == "tf" else "map"
        )
        return PlaceMap(dim=dim, model_id=model_id, index_type=self.p["index_type"], frame_id=frame)

    def _warn_odom(self, what: str) -> None:
        """Log and diagnose a map whose places have poses in odom (lost at the next restart)."""
        warning = self.map.odom_warning() if self.map is not None else None
        if warning:
            self._warn(f"{what}: {warning}")

    def _install_map(self, place_map: PlaceMap) -> None:
        assert self.pipeline is not None
        expected = self.p["model_id"]
        if expected and place_map.model_id != expected:
            raise ValueError(
                f"the map was built with model '{place_map.model_id}' but parameter model_id is "
                f"'{expected}'"
            )
        self.pipeline.install_map(place_map)
        for note in getattr(place_map, "load_notes", []):
            self._warn(note)
        self.edges = []
        self.retriever.sync(place_map)

    def _on_geo_estimate(self, msg: GeoEstimate) -> None:
        """No map loaded and nothing mapped yet: load the maps_root map matching the estimate's
        city (else its country). Otherwise the estimate is ignored."""
        label = f"{msg.country or '?'} / {msg.city or '?'}"
        path = self.p["map_path"]
        from_path = bool(path) and (Path(path) / "manifest.yaml").is_file()
        if self.geo_map or (self.map is not None and (len(self.map) > 0 or from_path)):
            why = f"map {self.geo_map} already selected" if self.geo_map else "a map is in use"
            self.get_logger().info(f"geo estimate {label} ignored: {why}")
            return
        root = self.p["maps_root"]
        try:
            entries = scan_maps(root)
        except FileNotFoundError as exc:
            self._warn(f"geo estimate {label}: {exc}")
            return
        model = self.map.model_id if self.map is not None else None
        choice = select_map(entries, msg.country, msg.city, model_id=model)
        if choice is None:
            self._warn(
                f"geo estimate {label}: none of the {len(entries)} map(s) in {root} is tagged "
                "with this city or country"
            )
            return
        try:
            loaded = PlaceMap.load(choice.entry.path, expected_model_id=model)
        except Exception as exc:
            self._warn(f"geo estimate {label}: cannot load {choice.entry.path}: {exc}")
            return
        self._install_map(loaded)
        self.pipeline.reset_stream()
        self._publish_described()
        self.geo_map = str(choice.entry.path)
        self._warn_odom(f"map {self.geo_map}")
        self.get_logger().info(
            f"geo estimate {label}: loaded map {self.geo_map} ({len(loaded)} places, "
            f"matched on {choice.level})"
        )

    def _save_on_exit(self) -> None:
        path = self.p["map_path"]
        if self.p["save_on_shutdown"] and path and self.map is not None:
            if not self.save_allowed:
                self.get_logger().warning(f"not saving over {path}: it failed to load at start")
                return
            self._warn_odom(f"saving {path}")
            self.map.save(path)
            print(f"[place_map] saved {len(self.map)} places to {path}", flush=True)

    # -- pose graph write-back -----------------------------------------------------------------
    def _subscribe_corrected_poses(self) -> None:
        """pose_graph's optimised keyframes (latched Path, stamps = place stamps) replace the
        places' poses, so text goals and markers use drift-corrected poses."""
        from nav_msgs.msg import Path as PathMsg

        self.inputs.append(
            self.create_subscription(
                PathMsg,
                "pose_graph/keyframe_path",
                self._on_corrected_poses,
                LATCHED,
                callback_group=self.group,
            )
        )

    def _on_corrected_poses(self, msg: Any) -> None:
        if self.map is None:
            return
        try:
            n = self.map.correct_poses(
                [stamp_to_sec(p.header.stamp) for p in msg.poses],
                [pose_to_array(p.pose) for p in msg.poses],
                frame_id=msg.header.frame_id or None,  # the optimiser's frame, as it says
            )
        except ValueError as exc:
            self._warn(f"corrected poses rejected: {exc}")
            return
        self.counts["poses_corrected"] = n

    # -- inputs --------------------------------------------------------------------------------
    def _clock_now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _add_pose(self, stamp: float, pose: np.ndarray, frame: str, flush: bool = True) -> None:
        assert self.pipeline is not None
        before = self.pipeline.pose_frame
        why = self.pipeline.push_pose(
            stamp, pose, time.monotonic(), self._clock_now(), frame_id=frame
        )
        if why is not None:
            self._warn(why)
            return
        after = self.pipeline.pose_frame
        if after != before:
            if before:
                self._warn(f"pose frame changed from {before} to {after}: poses are not mixed")
            else:
                self.get_logger().info(f"poses in frame {after!r}: places are recorded in it")
            if is_odom_frame(after):
                self.get_logger().warning(f"pose_source {self.p['pose_source']}: {ODOM_WARNING}")
        if flush:
            self._flush_pending()

    def _on_odom(self, msg: Odometry) -> None:
        self._add_pose(
            stamp_to_sec(msg.header.stamp), pose_to_array(msg.pose.pose), msg.header.frame_id
        )

    def _on_pose(self, msg: PoseStamped) -> None:
        self._add_pose(stamp_to_sec(msg.header.stamp), pose_to_array(msg.pose), msg.header.frame_id)

    def _on_pose_cov(self, msg: PoseWithCovarianceStamped) -> None:
        self._add_pose(
            stamp_to_sec(msg.header.stamp), pose_to_array(msg.pose.pose), msg.header.frame_id
        )

    def _poses_from_tf(self) -> None:
        """pose_source tf: the robot's pose (map_frame -> base_frame) at the stamps of the
        descriptors still waiting for one; tf may come later, so this is retried."""
        if self.tf is None or self.pipeline is None:
            return
        for pending in list(self.pipeline.pending):
            if self.pipeline.poses.lookup(pending.stamp, 0.0) is not None:
                continue
            pose = self.tf.lookup(self.p["map_frame"], self.p["base_frame"], pending.stamp)
            if pose is not None:
                self._add_pose(pending.stamp, pose, self.p["map_frame"], flush=False)

    def _on_descriptor(self, msg: PlaceDescriptor) -> None:
        assert self.pipeline is not None
        self.counts["descriptors"] += 1
        self.in_rate.tick()
        desc = np.asarray(msg.descriptor, dtype=np.float32)
        if msg.dim != desc.size:
            self._reject(f"descriptor dim field {msg.dim} != {desc.size} values: refused")
            return
        self.last_view = (msg.model_id, desc)
        records = self.pipeline.push_descriptor(
            desc,
            stamp_to_sec(msg.header.stamp),
            msg.model_id,
            time.monotonic(),
            self._clock_now(),
            payload=msg,
        )
        self._handle(records)
        self._poses_from_tf()

    def _flush_pending(self) -> None:
        self._poses_from_tf()
        if self.pipeline is not None:
            self._handle(self.pipeline.flush(time.monotonic()))
            status = self.pipeline.pose_status(time.monotonic())
            if status:  # a state, not an event: in diagnostics while it lasts, logged rarely
                self.get_logger().warning(status, throttle_duration_sec=10.0)

    def _handle(self, records: list[FrameRecord]) -> None:
        for rec in records:
            for note in rec.notes:
                self._warn(note)
            if rec.status == REJECTED:
                self._warn(rec.reason)  # counted by the pipeline
                continue
            res = rec.result
            assert res is not None and isinstance(rec.payload, PlaceDescriptor)
            latency_ms = (time.monotonic() - rec.arrived) * 1000.0
            self.latency.add(latency_ms)
            if res.is_keyframe:
                self.counts["keyframes"] += 1
            d = res.decision
            if d is None:
                continue
            if d.accepted:
                self._publish_loop_closure(rec, d, latency_ms)
            if self.pub_candidates is not None:
                self.pub_candidates.publish(self._loop_closure_msg(rec, d, latency_ms))

    def _loop_closure_msg(self, rec: FrameRecord, d: Any, latency_ms: float) -> LoopClosure:
        assert self.map is not None and isinstance(rec.payload, PlaceDescriptor)
        msg, pose, check = rec.payload, rec.pose, rec.verification
        m = self.map.get(int(d.match_id))
        out = LoopClosure()
        out.header.stamp = msg.header.stamp
        # The query's frame; a match recorded in another frame has no comparable pose.
        out.header.frame_id = rec.frame_id or m.frame_id
        if rec.frame_id and m.frame_id != rec.frame_id:
            pose = None
        # Localisation mode adds no keyframes: the query has no place id then.
        out.query_id = NO_PLACE if d.query_id is None else int(d.query_id)
        out.match_id = int(d.match_id)
        out.match_stamp = sec_to_stamp(m.stamp)
        out.has_poses = pose is not None and m.pose is not None
        out.query_pose, out.match_pose = array_to_pose(pose), array_to_pose(m.pose)
        out.score = float(d.score)
        out.sequence_score = math.nan if d.sequence_score is None else float(d.sequence_score)
        out.confidence = math.nan if d.confidence is None else float(d.confidence)
        out.sequence_length = int(d.sequence_length)
        out.latency_ms = float(latency_ms)
        out.accepted = bool(d.accepted)
        out.reason = str(d.reason)
        if check is not None:
            fill_verification(out, check)
        return out

    def _publish_loop_closure(self, rec: FrameRecord, d: Any, latency_ms: float) -> None:
        out = self._loop_closure_msg(rec, d, latency_ms)
        self.pub_lc.publish(out)
        if out.query_id != NO_PLACE:
            self.edges.append((out.query_id, out.match_id))
        self.counts["loop_closures"] += 1
        print(
            f"[place_map] loop closure: {query_label(out.query_id)} -> place {out.match_id} "
            f"score={out.score:.3f} seq={out.sequence_score:.3f} conf={out.confidence:.3f} "
            + (f"verified ({out.inliers} inliers)" if out.verified else "not verified"),
            flush=True,
        )

    # -- verification inputs: camera images, CameraInfo, depth ----------------------------------
    def _init_verification_inputs(self) -> None:
        """With verification on, keyframes need their images (features), the intrinsics
        (essential matrix / PnP) and optionally an aligned depth image (metric scale)."""
        assert self.pipeline is not None
        if self.pipeline.verifier is None:
            return
        from sensor_msgs.msg import CameraInfo, Image

        # Best effort, shallow, whatever reliable_input says: verification wants the keyframe's
        # frame, never a queue that could hold back the camera driver (a keyframe whose frame was
        # dropped is published unverified, with the reason). Their own group: decoding runs
        # beside, not in the way of, descriptors and poses.
        qos = sensor_qos(False)
        g = MutuallyExclusiveCallbackGroup()
        self.inputs += [
            self.create_subscription(
                Image, "camera/image_raw", self._on_image, qos, callback_group=g
            ),
            self.create_subscription(
                CameraInfo, "camera/camera_info", self._on_camera_info, qos, callback_group=g
            ),
            self.create_subscription(
                Image, "camera/depth/image_raw", self._on_depth, qos, callback_group=g
            ),
        ]

    def _calibrated(self) -> bool:
        v = self.pipeline.verifier if self.pipeline is not None else None
        return v is not None and v.intrinsics is not None

    def _on_image(self, msg: Any) -> None:
        from lavpr_ros.core.images import ImageFormatError, image_from_raw

        assert self.pipeline is not None and self.pipeline.verifier is not None
        if min(msg.height, msg.width) < self.pipeline.verifier.features.min_image_side:
            return  # too small for features anyway (e.g. 64x32): not worth decoding
        try:
            rgb = image_from_raw(msg.data, msg.height, msg.width, msg.encoding, msg.step)
        except ImageFormatError as exc:
            self._warn(f"camera/image_raw (for verification): {exc}")
            return
        self.pipeline.push_image(stamp_to_sec(msg.header.stamp), rgb)

    def _on_depth(self, msg: Any) -> None:
        from lavpr_ros.core.local_features import FeatureError, depth_from_ros

        assert self.pipeline is not None
        try:
            depth = depth_from_ros(msg.data, msg.height, msg.width, msg.encoding, msg.step)
        except FeatureError as exc:
            self._warn(f"camera/depth/image_raw refused: {exc}")
            return
        self.pipeline.push_depth(stamp_to_sec(msg.header.stamp), depth)

    def _on_camera_info(self, msg: Any) -> None:
        from lavpr_ros.core.geometry import CameraIntrinsics

        assert self.pipeline is not None and self.pipeline.verifier is not None
        v = self.pipeline.verifier
        if float(self.p["camera.fx"]) > 0:
            return  # intrinsics from parameters win
        try:
            cam = CameraIntrinsics.from_camera_info(list(msg.k), list(msg.d), msg.width, msg.height)
        except ValueError as exc:
            self._warn(f"camera/camera_info unusable ({exc}): verifying without intrinsics")
            return
        if v.intrinsics != cam:
            v.intrinsics = cam
            self.get_logger().info(
                f"camera intrinsics from camera_info: fx={cam.fx:.1f} fy={cam.fy:.1f} "
                f"cx={cam.cx:.1f} cy={cam.cy:.1f} ({cam.width}x{cam.height})"
            )

    # -- services ------------------------------------------------------------------------------
    def _srv_save(self, req: SaveMap.Request, res: SaveMap.Response) -> SaveMap.Response:
        path = req.path or self.p["map_path"]
        if not path:
            res.success, res.message = False, "no path given and map_path is empty"
            return res
        if self.map is None:
            res.success, res.message = False, "the map is empty (no descriptor received yet)"
            return res
        try:
            written = self.map.save(path)
        except Exception as exc:
            res.success, res.message = False, f"save failed: {exc}"
            return res
        res.success, res.path, res.num_places = True, str(written), len(self.map)
        res.message = f"saved {len(self.map)} places"
        warning = self.map.odom_warning()
        if warning:
            res.message += f"; warning: {warning}"
            self._warn_odom(f"saved {written}")
        if path == self.p["map_path"]:
            self.save_allowed = True
        return res

    def _srv_load(self, req: LoadMap.Request, res: LoadMap.Response) -> LoadMap.Response:
        path = req.path or self.p["map_path"]
        if not path:
            res.success, res.message = False, "no path given and map_path is empty"
            return res
        # The model descriptors come from (configured, the map in use, else the stream's):
        # a map of another model would drop every descriptor, so it is refused here.
        pl = self.pipeline
        assert pl is not None
        expected = pl.expected_model() or (pl.stream_model[0] if pl.stream_model else None)
        try:
            loaded = PlaceMap.load(path, expected_model_id=expected)
        except Exception as exc:
            res.success, res.message = False, f"load failed, current map kept: {exc}"
            return res
        self._install_map(loaded)
        self.pipeline.reset_stream()
        self._publish_described()
        res.success, res.num_places = True, len(loaded)
        res.message = f"loaded {len(loaded)} places from {path}"
        warning = loaded.odom_warning()
        if warning:
            res.message += f"; warning: {warning}"
            self._warn_odom(f"map {path}")
        return res

    def _srv_annotate(
        self, req: AnnotatePlace.Request, res: AnnotatePlace.Response
    ) -> AnnotatePlace.Response:
        if self.map is None or len(self.map) == 0:
            res.success, res.message = False, "the map has no places yet"
            return res
        if req.place_id < -1:
            res.success = False
            res.message = (
                f"place id {req.place_id} refused: -1 means the newest place, ids are >= 0"
            )
            return res
        pid = self.map.last_id if req.place_id == -1 else int(req.place_id)
        if pid is None or not 0 <= pid < len(self.map):
            res.success = False
            res.message = f"unknown place id {req.place_id} (map has ids 0..{len(self.map) - 1})"
            return res
        text = req.description.strip()
        if len(text) > 10_000:
            res.success, res.message = False, f"description too long ({len(text)} > 10000 chars)"
            return res
        self.map.set_description(pid, text)
        self.retriever.sync(self.map)
        self._publish_described()
        res.success, res.place_id, res.message = True, pid, f"place {pid} annotated"
        return res

    def _init_language_modes(self) -> None:
        """Models of the query_places modes beyond text (LaVPR: cross_modal, fusion)."""
        from lavpr_ros.core.cross_modal import CrossModalRetriever
        from lavpr_ros.core.fusion import FusionModel

        self.last_view: tuple[str, np.ndarray] | None = None  # latest camera descriptor
        cross = self.p["cross_modal_model"]
        fusion = self.p["fusion_model"]
        self.retriever = PlaceRetriever(
            self.text_index,
            CrossModalRetriever(cross) if cross else None,
            FusionModel(fusion) if fusion else None,
        )
        if self.p["query_mode"] not in RETRIEVAL_MODES:
            raise ValueError(f"query_mode must be one of {', '.join(RETRIEVAL_MODES)}")

    def _srv_query(
        self, req: QueryPlaces.Request, res: QueryPlaces.Response
    ) -> QueryPlaces.Response:
        mode = (req.mode or self.p["query_mode"]).replace("-", "_")
        k = int(req.top_k or self.p["query_top_k"])
        try:
            hits = self.retriever.search(mode, req.text, k, self.map, self.last_view)
        except ValueError as exc:
            res.success, res.message = False, str(exc)
            return res
        res.places = [
            self._retrieved(h.place_id, h.score, h.text_score, h.image_score) for h in hits
        ]
        res.success = True
        res.message = f"{len(res.places)} place(s) ({mode})" if res.places else "no places"
        if mode == "text" and not res.places:
            res.message = "no described places"
        return res

    # -- outputs -------------------------------------------------------------------------------
    def _retrieved(
        self, pid: int, score: float, text_score: float = math.nan, image_score: float = math.nan
    ) -> RetrievedPlace:
        assert self.map is not None
        place = self.map.get(pid)
        r = RetrievedPlace()
        r.place_id = pid
        r.has_pose = place.pose is not None
        r.pose.header.frame_id = place.frame_id  # where it was recorded, never relabelled
        r.pose.header.stamp = sec_to_stamp(place.stamp)
        r.pose.pose = array_to_pose(place.pose)
        r.description = place.description
        r.score, r.image_score, r.text_score = float(score), float(image_score), float(text_score)
        return r

    def _publish_described(self) -> None:
        msg = RetrievedPlaces()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.mode = "described"
        if self.map is not None:
            msg.places = [self._retrieved(p.id, math.nan) for p in self.map.places if p.description]
        # One frame for all: that frame; places in several frames: each place's pose says.
        frames = {p.pose.header.frame_id for p in msg.places}
        msg.header.frame_id = frames.pop() if len(frames) == 1 else ""
        self.pub_described.publish(msg)

    def _publish_markers(self) -> None:
        if self.map is None or len(self.map) == 0:
            return
        stamp = self.get_clock().now().to_msg()
        self.pub_markers.publish(build_markers(self.map, self.edges, stamp))

    # -- sequence encoder (hierarchical search) and the keyframe path ---------------------------
    def _init_sequence_and_path(self) -> None:
        self.sequence_encoder = None
        if self.p["sequence_model"]:
            from lavpr_ros.core.sequence_encoder import SequenceEncoder

            self.sequence_encoder = SequenceEncoder(self.p["sequence_model"])
            self.get_logger().info(f"sequence encoder {self.sequence_encoder}")
        self._path_sent: tuple[int, int] | None = None
        self._set_path_period(float(self.p["keyframe_path_period_s"]))

    def _set_path_period(self, period: float) -> None:
        """vpr/keyframe_path every ``period`` s at most (the publisher is made when first
        needed and kept: a latched topic keeps its last path); <= 0 stops updates."""
        if self.path_timer is not None:
            self.destroy_timer(self.path_timer)
            self.path_timer = None
        if period <= 0:
            return
        if self.pub_path is None:
            from nav_msgs.msg import Path as PathMsg

            self.pub_path = self.create_publisher(PathMsg, "vpr/keyframe_path", LATCHED)
        self.path_timer = self.create_timer(
            period, self._publish_keyframe_path, callback_group=self.group
        )

    def _sequence_kwargs(self) -> dict[str, Any]:
        if self.sequence_encoder is None:
            return {}
        return {
            "sequence_encoder": self.sequence_encoder,
            "sequence_shortlist_k": int(self.p["sequence_shortlist_k"]),
        }

    def _publish_keyframe_path(self) -> None:
        """Keyframe poses (stamps = keyframe stamps) when the map changed since the last one."""
        if self.pub_path is None or self.map is None:
            return
        key = (id(self.map), len(self.map))
        if key == self._path_sent:
            return
        from nav_msgs.msg import Path as PathMsg

        msg = PathMsg()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.map.frame_id
        for place in self.map.places:
            if place.pose is None:
                continue
            ps = PoseStamped()
            ps.header.stamp = sec_to_stamp(place.stamp)
            ps.header.frame_id = place.frame_id  # each keyframe in its own frame
            msg.header.frame_id = place.frame_id  # the path's: that of the newest keyframe
            ps.pose = array_to_pose(place.pose)
            msg.poses.append(ps)
        self.pub_path.publish(msg)
        self._path_sent = key

    def _reject(self, why: str) -> None:
        self.counts["rejected_messages"] += 1
        self._warn(why)

    def _warn(self, why: str) -> None:
        self.warning.set(why)
        self.get_logger().warning(why, throttle_duration_sec=2.0)

    def _diagnostics(self) -> tuple[int, str, dict[str, object]]:
        if self.pipeline is None:  # unconfigured (lifecycle), or its configure failed
            if self.failure:
                state = {"lifecycle_state": "unconfigured"}
                return ERROR, f"configure failed: {self.failure}", state
            return OK, f"{state_label(self)} (lifecycle)", {"lifecycle_state": state_label(self)}
        now_warning = self.warning.get() or self.pipeline.pose_status(time.monotonic())
        level = OK if not now_warning else WARN
        values: dict[str, object] = {
            "map_size": len(self.map) if self.map is not None else 0,
            "model_id": self.map.model_id if self.map is not None else "",
            "input_rate_hz": self.in_rate.rate(),
            "latency_p50_ms": self.latency.percentile(50),
            "latency_p95_ms": self.latency.percentile(95),
            "pending": len(self.pipeline.pending),
            **(self.pipeline.verifier.counts if self.pipeline.verifier is not None else {}),
            "camera_calibrated": self._calibrated(),
            "map_model_id": self.pipeline.expected_model() or "",
            **self.counts,
            **self.pipeline.counts,
            "rejected": self.pipeline.counts["rejected"] + self.counts["rejected_messages"],
            "last_warning": self.warning.last,
        }
        return level, now_warning or "ok", values


def fill_verification(out: LoopClosure, check: Any) -> None:
    """LoopClosure's verification fields from a core.verification.CheckOutcome."""
    from lavpr_ros.core.geometry import matrix_to_quaternion

    r = check.result
    out.verified = check.status == VERIFIED
    out.inliers = int(r.inliers) if r is not None else 0
    out.has_transform = bool(out.verified and r is not None and r.T_match_query is not None)
    if out.has_transform:
        T = r.T_match_query
        t = out.transform.translation
        t.x, t.y, t.z = (float(v) for v in T[:3, 3])
        q = matrix_to_quaternion(T)  # x, y, z, w
        rr = out.transform.rotation
        rr.x, rr.y, rr.z, rr.w = (float(v) for v in q)
        out.covariance = [float(v) for v in np.asarray(r.covariance, dtype=np.float64).ravel()]
        out.metric_scale = bool(r.metric_scale)
    if out.accepted and not out.verified:
        out.reason = f"accepted by the sequence decision; {check.reason}"


def main(args: list[str] | None = None) -> None:
    run_node(PlaceMapNode, args)


if __name__ == "__main__":
    main()
