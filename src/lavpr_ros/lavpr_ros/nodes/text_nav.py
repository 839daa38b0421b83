"""text_nav: a text command in, the matching places and a Nav2 goal out.

The command (std_msgs/String on text_command) is embedded by an ONNX text encoder (tokenised with
the `tokenizers` library, no torch) and matched against the descriptions of the map's places,
which place_map publishes, latched, on vpr/described_places. The best place's pose goes to
goal_pose (geometry_msgs/PoseStamped, what Nav2's bt_navigator listens to) only when its score
passes ``min_score``; otherwise no goal is sent and the reason is logged and published.
"""

from __future__ import annotations

import math
import time

from geometry_msgs.msg import PoseStamped
from lavpr_interfaces.msg import RetrievedPlace, RetrievedPlaces
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from lavpr_ros.core.text_encoder import TextEncoder
from lavpr_ros.core.text_retrieval import MAX_QUERY_CHARS, TextPlaceIndex
from lavpr_ros.nodes.diagnostics import OK, WARN, Diagnostics, LatencyMeter, RateMeter
from lavpr_ros.nodes.params import Param, declare
from lavpr_ros.nodes.runner import run_node

PARAMS = [
    Param("text_model", "", "Text encoder model manifest (.yaml or its directory); required"),
    Param("providers", "", "Comma-separated ONNX Runtime execution providers; empty = auto"),
    Param("top_k", 5, "Places published on vpr/retrieved_places per command"),
    Param("min_score", 0.35, "Cosine score the best place needs for a goal to be sent"),
    Param("mode", "text", "Retrieval mode (text: place descriptions)"),
    Param("goal_frame_id", "", "Frame of goal_pose; empty = the places' frame"),
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics messages [s]"),
]

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class TextNavNode(Node):
    def __init__(self) -> None:
        super().__init__("text_nav")
        self.p = declare(self, PARAMS)
        if not self.p["text_model"]:
            raise ValueError("text_nav needs the text_model parameter (a text model manifest)")
        if self.p["mode"] != "text":
            raise ValueError(f"retrieval mode '{self.p['mode']}' is not available; use 'text'")
        providers = [s.strip() for s in str(self.p["providers"]).split(",") if s.strip()]
        self.encoder = TextEncoder(self.p["text_model"], providers=providers or None)
        self.index = TextPlaceIndex(self.encoder)
        self.places: dict[int, RetrievedPlace] = {}
        self.frame_id = ""
        self.commands = self.goals = self.refused = 0
        self.last_reason = ""
        self.rate, self.latency = RateMeter(), LatencyMeter()
        g = MutuallyExclusiveCallbackGroup()
        self.pub_places = self.create_publisher(RetrievedPlaces, "vpr/retrieved_places", 10)
        self.pub_goal = self.create_publisher(PoseStamped, "goal_pose", 10)
        self.create_subscription(String, "text_command", self._on_command, 10, callback_group=g)
        self.create_subscription(
            RetrievedPlaces, "vpr/described_places", self._on_described, LATCHED, callback_group=g
        )
        self.diag = Diagnostics(self, self._diagnostics, float(self.p["diagnostics_period_s"]))
        self.get_logger().info(f"text encoder {self.encoder.model_id} on {self.encoder.provider}")

    def _on_described(self, msg: RetrievedPlaces) -> None:
        self.places = {int(p.place_id): p for p in msg.places}
        self.frame_id = msg.header.frame_id
        encoded = self.index.sync((pid, p.description) for pid, p in self.places.items())
        self.get_logger().info(f"{len(self.places)} described place(s) ({encoded} newly encoded)")

    def _on_command(self, msg: String) -> None:
        t0 = time.perf_counter()
        self.commands += 1
        self.rate.tick()
        text = msg.data
        out = RetrievedPlaces()
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = self.frame_id
        out.query, out.mode = text[:1000], "text"
        if not text.strip():
            self._refuse(out, "empty text command ignored")
            return
        if len(text) > MAX_QUERY_CHARS:
            self.get_logger().warning(
                f"text command of {len(text)} chars truncated to {MAX_QUERY_CHARS}"
            )
        hits = self.index.query(text, int(self.p["top_k"]))
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
        best = out.places[0]
        if best.score < float(self.p["min_score"]):
            self._refuse(
                out,
                f"best place {best.place_id} ('{best.description[:60]}') scores "
                f"{best.score:.3f} < min_score {float(self.p['min_score']):.3f}: no goal sent",
            )
            return
        if not best.has_pose:
            self._refuse(out, f"best place {best.place_id} has no recorded pose: no goal sent")
            return
        goal = PoseStamped()
        goal.header.stamp = out.header.stamp
        goal.header.frame_id = self.p["goal_frame_id"] or best.pose.header.frame_id or "map"
        goal.pose = best.pose.pose
        out.goal_sent = True
        self.pub_places.publish(out)
        self.pub_goal.publish(goal)
        self.goals += 1
        self.last_reason = ""
        print(
            f"[text_nav] '{text[:60]}' -> place {best.place_id} ({best.score:.3f}): goal "
            f"({goal.pose.position.x:.2f}, {goal.pose.position.y:.2f}) in {goal.header.frame_id}",
            flush=True,
        )

    def _refuse(self, out: RetrievedPlaces, reason: str) -> None:
        out.goal_sent, out.reason = False, reason
        self.pub_places.publish(out)
        self.refused += 1
        self.last_reason = reason
        self.get_logger().warning(reason)

    def _diagnostics(self) -> tuple[int, str, dict[str, object]]:
        level = OK if not self.last_reason else WARN
        if not self.places:
            level = WARN
        return (
            level,
            self.last_reason or ("ready" if self.places else "no described places yet"),
            {
                "model_id": self.encoder.model_id,
                "execution_provider": self.encoder.provider,
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
