"""text_nav: a text command in, the matching places and a Nav2 goal out.

The command (std_msgs/String on text_command) is embedded by an ONNX text encoder (tokenised with
the `tokenizers` library, no torch) and matched against the descriptions of the map's places,
which place_map publishes, latched, on vpr/described_places. The best place's pose goes to
goal_pose (geometry_msgs/PoseStamped, what Nav2's bt_navigator listens to) only when its score
passes ``min_score`` and it beats the best *different* place by ``min_margin`` (a command for a
place that is not in the map scores many unrelated places alike); otherwise no goal is sent and
the reason is logged and published in RetrievedPlaces.reason.

Retrieval modes (``mode``, LaVPR): ``text`` runs here (place descriptions); ``cross_modal`` (the
command against the places' *image* descriptors, so undescribed places can be found), ``fusion``
(the current camera view + the command as its description) and ``image`` (the current camera
view alone) are asked from place_map's ``query_places`` service, asynchronously: the answer
arrives as a future's callback and the executor is never blocked waiting for it.

Frames (REP-105): a goal is published in the frame its place was recorded in. ``goal_frame_id``
asks for another frame: the place's pose is transformed with tf2 where tf2_ros is importable;
otherwise (or without a transform) the goal is refused with the reason, never relabelled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from geometry_msgs.msg import PoseStamped
from lavpr_interfaces.msg import RetrievedPlace, RetrievedPlaces
from lavpr_interfaces.srv import QueryPlaces
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String

from lavpr_ros.core.text_encoder import TextEncoder
from lavpr_ros.core.text_goal import (
    DEFAULT_MIN_MARGIN,
    DEFAULT_MIN_SCORE,
    GoalPolicy,
    decide_goal,
    same_place_within,
)
from lavpr_ros.core.text_retrieval import MAX_QUERY_CHARS, TextPlaceIndex, log_safe
from lavpr_ros.nodes.diagnostics import ERROR, OK, WARN, Diagnostics, LatencyMeter, RateMeter
from lavpr_ros.nodes.lifecycle import AUTOSTART, ManagedNode, state_label
from lavpr_ros.nodes.params import (
    LATCHED,
    LiveParameters,
    Param,
    declare,
    parse_providers,
    positive_period,
    require,
)
from lavpr_ros.nodes.runner import run_node

PARAMS = [
    Param(
        "text_model",
        "minilm-l6-v2",
        "Text encoder model manifest (.yaml or its directory; relative paths are also looked up "
        "in the models folders, see docs); needed by mode text. When it cannot be loaded the "
        "node runs degraded: every command is refused with the reason",
    ),
    Param("providers", "", "Comma-separated ONNX Runtime execution providers; empty = auto"),
    Param("top_k", 5, "Places published on vpr/retrieved_places per command", live=True),
    Param(
        "min_score",
        DEFAULT_MIN_SCORE,
        "Cosine score the best place needs for a goal to be sent (calibrated on Corridor: "
        "`lavpr text calibrate`, docs/text_goals.md)",
        live=True,
    ),
    Param(
        "min_margin",
        DEFAULT_MIN_MARGIN,
        "Ambiguity check: how much the best place must out-score the best different place "
        "(farther than ambiguity_radius_m); 0 = off [cosine]",
        live=True,
    ),
    Param(
        "ambiguity_radius_m",
        2.0,
        "Places within this distance of the best one count as the same place in the "
        "ambiguity check (places without a pose are always different) [m]",
        live=True,
    ),
    Param(
        "mode",
        "text",
        "Retrieval mode: text (place descriptions, here), or via place_map's query_places: "
        "cross_modal (text vs image descriptors), fusion (camera view + text), image (view)",
    ),
    Param(
        "query_timeout_s",
        5.0,
        "How long to wait for query_places before giving up [s]",
        live=True,
    ),
    Param(
        "goal_frame_id",
        "",
        "Frame of goal_pose; empty = the frame the place was recorded in. Another frame: the "
        "place's pose is transformed with tf2 (latest transform); without tf2_ros or a "
        "transform the goal is refused with the reason",
    ),
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics messages [s]", live=True),
    Param(
        "pose_text_model",
        "",
        "Pose-text model manifest (kind pose_text): re-rank places by how well the recorded "
        "trajectory before each (vpr/keyframe_path) fits the command; needs text_model "
        "(empty = off)",
    ),
    Param(
        "pose_text_weight",
        0.3,
        "Weight w of the pose-text score: score = (1 - w) * retrieval + w * pose_text",
        live=True,
    ),
    AUTOSTART,
]

MODES = ("text", "cross_modal", "fusion", "image")


def goal_policy(p: dict[str, Any]) -> GoalPolicy:
    """The goal policy of min_score / min_margin, with ambiguity_radius_m checked (ValueError
    naming the parameter when a value is out of range)."""
    radius = float(p["ambiguity_radius_m"])
    require(
        math.isfinite(radius) and radius >= 0,
        f"ambiguity_radius_m must be finite and >= 0 [m], got {radius}",
    )
    return GoalPolicy(float(p["min_score"]), float(p["min_margin"]))


class TextNavNode(ManagedNode):
    """Managed node: configure loads the text (and pose-text) models, activate takes commands."""

    def __init__(self) -> None:
        super().__init__("text_nav")
        self.p = declare(self, PARAMS)
        self.policy = goal_policy(self.p)
        self.mode = str(self.p["mode"]).replace("-", "_")
        if self.mode not in MODES:
            raise ValueError(f"retrieval mode '{self.mode}' is not one of {', '.join(MODES)}")
        self.encoder: TextEncoder | None = None
        self.index: TextPlaceIndex | None = None
        self.model_error = ""
        self.failure = ""  # why the last configure failed
        self.pose_text: Any = None
        self.path: tuple[Any, Any] | None = None
        self.pending: dict[int, tuple[Any, float, RetrievedPlaces, float]] = {}
        self._next = 0
        self.places: dict[int, RetrievedPlace] = {}
        self.frame_id = ""
        self.commands = self.goals = self.refused = 0
        self.last_reason = ""
        self.rate, self.latency = RateMeter(), LatencyMeter()
        self.group = MutuallyExclusiveCallbackGroup()
        self.pub_places = self.create_publisher(RetrievedPlaces, "vpr/retrieved_places", 10)
        self.pub_goal = self.create_publisher(PoseStamped, "goal_pose", 10)
        self.client = self.create_client(QueryPlaces, "query_places", callback_group=self.group)
        self.diag = Diagnostics(self, self._diagnostics, float(self.p["diagnostics_period_s"]))
        self.tf: Any = None
        if self.p["goal_frame_id"]:
            from lavpr_ros.nodes.tf_pose import TfLookup

            try:
                self.tf = TfLookup(self, "goal_frame_id")
            except RuntimeError as exc:  # goals in other frames are refused, with this reason
                self.tf_error = str(exc)
                self.get_logger().warning(
                    f"{exc}: goals of places not recorded in {self.p['goal_frame_id']!r} are "
                    "refused"
                )
        self.live = LiveParameters(self, PARAMS, self.p, self._prepare_live)

    # -- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.model_error = ""
        if self.mode == "text":
            providers = parse_providers(self.p["providers"])
            try:
                if not self.p["text_model"]:
                    raise ValueError("the text_model parameter is empty")
                self.encoder = TextEncoder(self.p["text_model"], providers=providers)
                self.index = TextPlaceIndex(self.encoder)
            except (OSError, ValueError, RuntimeError) as exc:
                # A graph without text commands still recognises places: run degraded, loudly.
                self.model_error = f"no text model, text commands are refused: {exc}"
                self.get_logger().error(self.model_error)
        try:
            self._init_pose_text()
        except Exception as exc:  # a pose-text model asked for and not loadable: say why
            self.failure = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self.release()
            return TransitionCallbackReturn.FAILURE
        self.failure = ""
        if self.encoder is not None:
            self.get_logger().info(
                f"text encoder {self.encoder.model_id} on {self.encoder.provider}"
            )
        else:
            self.get_logger().info(f"mode {self.mode}: retrieval by place_map's query_places")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        g = self.group
        self.inputs = [
            self.create_subscription(
                String, "text_command", self._on_command, 10, callback_group=g
            ),
            self.create_subscription(
                RetrievedPlaces,
                "vpr/described_places",
                self._on_described,
                LATCHED,
                callback_group=g,
            ),
            self.create_timer(0.2, self._expire, callback_group=g),
        ]
        if self.pose_text is not None:
            from nav_msgs.msg import Path as PathMsg

            self.inputs.append(
                self.create_subscription(
                    PathMsg, "vpr/keyframe_path", self._on_path, LATCHED, callback_group=g
                )
            )
        print(f"[{self.get_name()}] ready", flush=True)
        return super().on_activate(state)

    def inputs_stopped(self) -> None:
        self.pending.clear()

    def release(self) -> None:
        self.encoder = self.index = self.pose_text = None
        self.path = None

    def _prepare_live(self, new: dict[str, Any], changed: set[str]) -> Callable[[], None]:
        """Check new values (ValueError: refused, nothing changed); the commit installs the
        goal policy and the diagnostics period. top_k, ambiguity_radius_m, query_timeout_s and
        pose_text_weight are read from self.p at use."""
        policy = goal_policy(new)
        if "top_k" in changed:
            require(int(new["top_k"]) >= 1, f"top_k must be >= 1, got {new['top_k']}")
        if "query_timeout_s" in changed:
            positive_period(new, "query_timeout_s")
        if "pose_text_weight" in changed:
            from lavpr_ros.core.pose_text import combine_scores

            combine_scores([0.0], [0.0], float(new["pose_text_weight"]))  # validates
        period = None
        if "diagnostics_period_s" in changed:
            period = positive_period(new, "diagnostics_period_s")

        def commit() -> None:
            self.policy = policy
            if period is not None:
                self.diag.set_period(period)

        return commit

    def _on_described(self, msg: RetrievedPlaces) -> None:
        self.places = {int(p.place_id): p for p in msg.places}
        self.frame_id = msg.header.frame_id
        encoded = (
            self.index.sync((pid, p.description) for pid, p in self.places.items())
            if self.index is not None
            else 0
        )
        self.get_logger().info(f"{len(self.places)} described place(s) ({encoded} newly encoded)")

    def _on_command(self, msg: String) -> None:
        t0 = time.perf_counter()
        self.commands += 1
        self.rate.tick()
        text = msg.data
        out = RetrievedPlaces()
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = self.frame_id
        out.query, out.mode = text[:1000], self.mode
        if not text.strip() and self.mode != "image":
            self._refuse(out, "empty text command ignored")
            return
        if len(text) > MAX_QUERY_CHARS:
            self.get_logger().warning(
                f"text command of {len(text)} chars truncated to {MAX_QUERY_CHARS}"
            )
        if self.mode != "text":
            self._ask_place_map(text, out, t0)
            return
        if self.index is None:
            self._refuse(out, self.model_error)
            return
        hits = self.index.query(text, len(self.places))  # all: the ambiguity check needs them
        for h in hits:
            src = self.places[h.place_id]
            r = RetrievedPlace()
            r.place_id, r.pose, r.has_pose = src.place_id, src.pose, src.has_pose
            r.description, r.score = src.description, float(h.score)
            r.image_score, r.text_score = math.nan, float(h.score)
            out.places.append(r)
        self.latency.add((time.perf_counter() - t0) * 1000.0)
        if not hits:
            self._refuse(out, "no described places in the map: annotate places first")
            return
        self._decide(out, text)

    def _ask_place_map(self, text: str, out: RetrievedPlaces, t0: float) -> None:
        """Send the query; the answer comes back in _on_answer (no waiting here)."""
        if not self.client.service_is_ready():
            self._refuse(out, "place_map's query_places service is not available")
            return
        req = QueryPlaces.Request(text=text, top_k=int(self.p["top_k"]), mode=self.mode)
        self._next += 1
        key = self._next
        future = self.client.call_async(req)
        self.pending[key] = (future, t0, out, time.monotonic())
        future.add_done_callback(lambda f, key=key: self._on_answer(key, f))

    def _on_answer(self, key: int, future: Any) -> None:
        entry = self.pending.pop(key, None)
        if entry is None:  # expired already
            return
        _, t0, out, _ = entry
        try:
            res = future.result()
        except Exception as exc:  # the request failed inside rclpy
            self._refuse(out, f"query_places failed: {exc}")
            return
        self.latency.add((time.perf_counter() - t0) * 1000.0)
        if res is None or not res.success:
            self._refuse(out, f"query_places ({self.mode}): {getattr(res, 'message', 'no answer')}")
            return
        out.places = list(res.places)
        if not out.places:
            self._refuse(out, f"no places found ({self.mode}): {res.message}")
            return
        self._decide(out, out.query)

    def _expire(self) -> None:
        now, limit = time.monotonic(), float(self.p["query_timeout_s"])
        for key in [k for k, v in self.pending.items() if now - v[3] > limit]:
            future, _, out, _ = self.pending.pop(key)
            future.cancel()
            self._refuse(out, f"query_places gave no answer within {limit:.1f} s")

    def _decide(self, out: RetrievedPlaces, text: str) -> None:
        """Publish the places (top_k); send the best one's pose as a goal when it scores high
        enough and clearly beats every different place (core/text_goal.py)."""
        self._pose_text_rerank(out, text)
        cands = out.places
        pos = [
            (p.pose.pose.position.x, p.pose.pose.position.y, p.pose.pose.position.z) for p in cands
        ]
        same = same_place_within(
            pos, float(self.p["ambiguity_radius_m"]), [bool(p.has_pose) for p in cands]
        )
        labels = [f"{p.place_id} ('{p.description[:60]}')" for p in cands]
        decision = decide_goal([p.score for p in cands], self.policy, same, labels)
        best = cands[decision.best]
        out.places = sorted(cands, key=lambda p: -p.score)[: int(self.p["top_k"])]
        if not decision.accept:
            self._refuse(out, f"'{text[:60]}': {decision.reason}: no goal sent")
            return
        if not best.has_pose:
            self._refuse(out, f"best place {best.place_id} has no recorded pose: no goal sent")
            return
        goal = self._goal_in_frame(best)
        if isinstance(goal, str):
            self._refuse(out, f"'{text[:60]}' -> place {best.place_id}: {goal}: no goal sent")
            return
        goal.header.stamp = out.header.stamp
        out.goal_sent = True
        self.pub_places.publish(out)
        self.pub_goal.publish(goal)
        self.goals += 1
        self.last_reason = ""
        print(
            f"[text_nav] '{log_safe(text, 60)}' -> place {best.place_id} ({best.score:.3f}): goal "
            f"({goal.pose.position.x:.2f}, {goal.pose.position.y:.2f}) in {goal.header.frame_id}",
            flush=True,
        )

    def _goal_in_frame(self, best: RetrievedPlace) -> PoseStamped | str:
        """The place's pose as a goal in goal_frame_id (default: the frame it was recorded in),
        or why not: a frame is never relabelled, only transformed (tf2)."""
        place_frame = best.pose.header.frame_id
        if not place_frame:
            return "the place's pose has no frame"
        want = self.p["goal_frame_id"] or place_frame
        goal = PoseStamped()
        goal.header.frame_id = want
        goal.pose = best.pose.pose
        if want == place_frame:
            return goal
        if self.tf is None:
            return (
                f"goal_frame_id is {want!r} but the place was recorded in {place_frame!r} and "
                f"there is no tf2 to transform it ({getattr(self, 'tf_error', 'tf2_ros missing')})"
            )
        from lavpr_ros.core.poses import compose_poses
        from lavpr_ros.nodes.convert import array_to_pose, pose_to_array

        transform = self.tf.lookup(want, place_frame, None)
        if transform is None:
            return f"cannot transform the place's pose into {want!r}: {self.tf.last_error}"
        goal.pose = array_to_pose(compose_poses(transform, pose_to_array(best.pose.pose)))
        return goal

    # -- pose-text re-ranking (instruction vs the trajectory before each place) ----------------
    def _init_pose_text(self) -> None:
        self.pose_text = None
        self.path = None
        if not self.p["pose_text_model"]:
            return
        from lavpr_ros.core.pose_text import PoseTextModel, combine_scores

        combine_scores([0.0], [0.0], float(self.p["pose_text_weight"]))  # validates the weight
        encoder = self.encoder
        if encoder is None:
            if not self.p["text_model"]:
                raise ValueError("pose_text_model needs the text_model parameter (its text side)")
            encoder = TextEncoder(self.p["text_model"])
        self.pose_text = PoseTextModel(self.p["pose_text_model"], text_encoder=encoder)
        self.get_logger().info(
            f"pose-text model {self.pose_text.model_id} (weight {self.p['pose_text_weight']})"
        )

    def _on_path(self, msg: Any) -> None:
        import numpy as np

        stamps, poses = [], []
        for ps in msg.poses:
            t = ps.header.stamp.sec + ps.header.stamp.nanosec * 1e-9
            if stamps and t <= stamps[-1]:
                continue  # keep strictly increasing stamps
            p, q = ps.pose.position, ps.pose.orientation
            stamps.append(t)
            poses.append([p.x, p.y, p.z, q.x, q.y, q.z, q.w])
        self.path = (np.array(stamps), np.array(poses)) if stamps else None

    def _pose_text_rerank(self, out: RetrievedPlaces, text: str) -> None:
        """(1 - w) * retrieval score + w * pose-text score of the keyframe-path window ending at
        each place's stamp; re-sorted, cut to top_k. No path yet: left as it is (logged)."""
        if self.pose_text is None or not out.places:
            return
        if self.path is None:
            self.get_logger().warning("no vpr/keyframe_path yet: pose-text score not used")
            return
        from lavpr_ros.core.pose_text import combine_scores

        ends = [p.pose.header.stamp.sec + p.pose.header.stamp.nanosec * 1e-9 for p in out.places]
        pts = self.pose_text.score_windows(text, self.path[0], self.path[1], ends)
        w = float(self.p["pose_text_weight"])
        new = combine_scores([p.score for p in out.places], pts, w)
        for place, score in zip(out.places, new, strict=True):
            place.score = float(score)
        out.places = sorted(out.places, key=lambda p: -p.score)

    def _refuse(self, out: RetrievedPlaces, reason: str) -> None:
        out.goal_sent, out.reason = False, reason
        self.pub_places.publish(out)
        self.refused += 1
        self.last_reason = reason
        self.get_logger().warning(log_safe(reason))

    def _diagnostics(self) -> tuple[int, str, dict[str, object]]:
        level = OK if not self.last_reason else WARN
        if not self.places:
            level = WARN
        if self.model_error:
            level = ERROR
        message = (
            self.model_error
            or self.last_reason
            or ("ready" if self.places else "no described places yet")
        )
        state = state_label(self)
        if self.failure and state != "active":
            level, message = ERROR, f"configure failed: {self.failure}"
        elif state != "active":
            level, message = OK, f"{state} (lifecycle): commands are not taken"
        return (
            level,
            message,
            {
                "lifecycle_state": state,
                "mode": self.mode,
                "model_id": self.encoder.model_id if self.encoder else "(place_map)",
                "execution_provider": self.encoder.provider if self.encoder else "",
                "pending_queries": len(self.pending),
                "described_places": len(self.places),
                "command_rate_hz": self.rate.rate(),
                "latency_p50_ms": self.latency.percentile(50),
                "latency_p95_ms": self.latency.percentile(95),
                "commands": self.commands,
                "goals_sent": self.goals,
                "commands_without_goal": self.refused,
            },
        )


def main(args: list[str] | None = None) -> None:
    run_node(TextNavNode, args)


if __name__ == "__main__":
    main()
