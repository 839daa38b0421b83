"""geo_localizer: coarse geo-localization (country, city) of the camera image by an LVLM (GLOBE).

The newest camera image is kept (raw and/or compressed). A request sends it, JPEG-encoded and
downscaled to ``max_image_side``, with the GLOBE reasoning prompt to an OpenAI-compatible
chat-completions server (vLLM), parses the reply and publishes ``vpr/geo_estimate``
(lavpr_interfaces/GeoEstimate, latched: a late subscriber such as place_map still gets the last
one).

Requests start from the ``geo_localize`` service (std_srvs/Trigger) or every ``period_s`` seconds.
The service does not wait for the server: it answers at once ("request started", or why not:
busy with another request, no image yet, image too old) and the result arrives on the topic. One
request runs at a time, on a worker thread, so the executor never blocks; a trigger while busy
is refused with a message. Failures (timeouts after the retries, HTTP errors, replies without a
usable answer) publish nothing: they are logged and shown in /diagnostics (WARN, with the reason)
until the next success.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from lavpr_interfaces.msg import GeoEstimate
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from lavpr_ros.core.geo import GeoParseError, parse_answer
from lavpr_ros.core.images import (
    DEFAULT_MAX_PIXELS,
    ImageFormatError,
    image_from_compressed,
    image_from_raw,
)
from lavpr_ros.geo_client import GeoClient, GeoServerError, encode_jpeg
from lavpr_ros.nodes.diagnostics import OK, WARN, Diagnostics, LatencyMeter
from lavpr_ros.nodes.params import LATCHED, LiveParameters, Param, declare, prepare_periods
from lavpr_ros.nodes.runner import run_node

PARAMS = [
    Param(
        "base_url",
        "",
        "OpenAI-compatible server URL including /v1 (empty = $LAVPR_GEO_BASE_URL, else "
        "http://localhost:8000/v1)",
    ),
    Param(
        "model",
        "",
        "Served model name (empty = $LAVPR_GEO_MODEL, else the first model the server lists)",
    ),
    Param(
        "api_key",
        "",
        "API key sent as a Bearer token (empty = $LAVPR_GEO_API_KEY or $OPENAI_API_KEY; "
        "prefer the environment: parameters are readable by anyone on the ROS graph)",
    ),
    Param(
        "period_s",
        0.0,
        "Send the newest image every this many seconds [s]; 0 = only on the geo_localize service",
    ),
    Param("subscribe_raw", True, "Subscribe camera/image_raw (sensor_msgs/Image)"),
    Param(
        "subscribe_compressed",
        False,
        "Subscribe camera/image_raw/compressed (sensor_msgs/CompressedImage)",
    ),
    Param(
        "max_image_age_s",
        10.0,
        "Refuse a request when the newest image arrived longer ago than this [s, wall time]; "
        "<= 0 = any age",
    ),
    Param("max_image_side", 1024, "Longer side of the JPEG sent, downscaled to it [px]; 0 = as is"),
    Param("jpeg_quality", 90, "JPEG quality of the image sent (1-100)"),
    Param(
        "max_image_pixels",
        DEFAULT_MAX_PIXELS,
        "Images with more pixels are refused from their header, before decoding; <= 0 = only "
        "the built-in sanity limit",
    ),
    Param("timeout_s", 60.0, "Timeout of one HTTP request [s]"),
    Param(
        "max_retries",
        2,
        "Retries after a timeout, connection error or HTTP 429/5xx (never after other 4xx)",
    ),
    Param(
        "retry_backoff_s",
        1.0,
        "First retry delay [s], doubled at each retry (a longer Retry-After is honoured)",
    ),
    Param("max_tokens", 1024, "Completion token limit (the reasoning needs room)"),
    Param("temperature", 0.1, "Sampling temperature"),
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics messages [s]", live=True),
]


@dataclass
class _Job:
    header: Header
    msg: Image | CompressedImage
    source: str  # "service" or "timer"


class GeoLocalizerNode(Node):
    def __init__(self) -> None:
        super().__init__("geo_localizer")
        self.p = declare(self, PARAMS)
        self.client = GeoClient(
            base_url=self.p["base_url"],
            model=self.p["model"],
            api_key=self.p["api_key"],
            timeout_s=float(self.p["timeout_s"]),
            max_retries=int(self.p["max_retries"]),
            backoff_s=float(self.p["retry_backoff_s"]),
            max_tokens=int(self.p["max_tokens"]),
            temperature=float(self.p["temperature"]),
        )
        self.get_logger().info(
            f"GLOBE server {self.client.display_url}, model "
            f"{self.client.model or '(first listed by the server)'}"
        )
        self._lock = threading.Condition()
        self._latest: tuple[Image | CompressedImage, float] | None = None
        self._job: _Job | None = None
        self._busy_since: float | None = None
        self._stop = False
        self.counts = {
            "images": 0,
            "requests": 0,
            "estimates": 0,
            "failures": 0,
            "refused": 0,
        }
        self.latency = LatencyMeter()
        self.last_error = ""
        self.last_estimate = ""
        self.pub = self.create_publisher(GeoEstimate, "vpr/geo_estimate", LATCHED)
        if self.p["subscribe_raw"]:
            self.create_subscription(
                Image, "camera/image_raw", self._on_image, qos_profile_sensor_data
            )
        if self.p["subscribe_compressed"]:
            self.create_subscription(
                CompressedImage,
                "camera/image_raw/compressed",
                self._on_image,
                qos_profile_sensor_data,
            )
        self.create_service(Trigger, "geo_localize", self._srv_trigger)
        if float(self.p["period_s"]) > 0:
            self.create_timer(float(self.p["period_s"]), self._on_timer)
        self.diag = Diagnostics(self, self._diagnostics, float(self.p["diagnostics_period_s"]))
        self.live = LiveParameters(
            self,
            PARAMS,
            self.p,
            prepare_periods({"diagnostics_period_s": (self.diag.set_period, False)}),
        )
        self._worker = threading.Thread(target=self._work, name="geo_request", daemon=True)
        self._worker.start()

    # -- input ---------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        with self._lock:
            self._latest = (msg, time.monotonic())
            self.counts["images"] += 1

    def _start(self, source: str) -> tuple[bool, str]:
        """Queue a request for the newest image; (started, message)."""
        with self._lock:
            if self._job is not None or self._busy_since is not None:
                since = time.monotonic() - (self._busy_since or time.monotonic())
                self.counts["refused"] += 1
                return False, f"busy: a request is already running ({since:.1f} s); try later"
            if self._latest is None:
                self.counts["refused"] += 1
                return False, "no camera image received yet (camera/image_raw)"
            msg, arrived = self._latest
            age = time.monotonic() - arrived
            max_age = float(self.p["max_image_age_s"])
            if max_age > 0 and age > max_age:
                self.counts["refused"] += 1
                return False, f"newest image is {age:.1f} s old (max_image_age_s {max_age:g})"
            self._job = _Job(msg.header, msg, source)
            self._busy_since = time.monotonic()
            self._lock.notify_all()
        return True, "request started; the result will be published on vpr/geo_estimate"

    def _srv_trigger(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        res.success, res.message = self._start("service")
        if res.success:  # (rclpy forbids two severities at one call site)
            self.get_logger().info(f"geo_localize: {res.message}")
        else:
            self.get_logger().warning(f"geo_localize: {res.message}")
        return res

    def _on_timer(self) -> None:
        started, why = self._start("timer")
        if not started and not why.startswith("busy"):
            self.get_logger().warning(
                f"periodic geo request skipped: {why}", throttle_duration_sec=30.0
            )

    # -- requests (worker thread) --------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._job is None and not self._stop:
                    self._lock.wait(0.5)
                if self._stop:
                    return
                job = self._job
                self._job = None
            assert job is not None
            try:
                self._run(job)
            except Exception as exc:  # never let the worker die
                self._fail(f"unexpected error: {type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._busy_since = None

    def _run(self, job: _Job) -> None:
        self.counts["requests"] += 1
        try:
            if isinstance(job.msg, CompressedImage):
                image = image_from_compressed(
                    bytes(job.msg.data), job.msg.format, self._max_pixels()
                )
            else:
                m = job.msg
                image = image_from_raw(
                    m.data, m.height, m.width, m.encoding, m.step, self._max_pixels()
                )
        except ImageFormatError as exc:
            self._fail(f"camera image refused: {exc}")
            return
        jpeg = encode_jpeg(image, int(self.p["max_image_side"]), int(self.p["jpeg_quality"]))
        try:
            reply = self.client.complete(jpeg)
        except GeoServerError as exc:
            self._fail(f"GLOBE request failed: {exc}")
            return
        try:
            answer = parse_answer(reply.text)
        except GeoParseError as exc:
            self._fail(f"GLOBE reply unusable: {exc}")
            return
        out = GeoEstimate()
        out.header = job.header
        out.country, out.city = answer.country, answer.city
        out.has_coordinates = answer.has_coordinates
        out.latitude = answer.latitude if answer.has_coordinates else math.nan
        out.longitude = answer.longitude if answer.has_coordinates else math.nan
        out.confidence = float(answer.confidence)  # NaN when the model gave none
        out.reasoning = answer.reasoning
        out.latency_ms = float(reply.latency_ms)
        out.model = reply.model
        self.pub.publish(out)
        self.latency.add(reply.latency_ms)
        self.counts["estimates"] += 1
        self.last_estimate = answer.label()
        self.last_error = ""
        notes = f" [{'; '.join(answer.notes)}]" if answer.notes else ""
        retries = f", {reply.attempts - 1} retries" if reply.attempts > 1 else ""
        self.get_logger().info(
            f"geo estimate: {answer.label()} from {reply.model} in {reply.latency_ms:.0f} ms"
            f"{retries}{notes}"
        )

    def _max_pixels(self) -> int:
        return int(self.p["max_image_pixels"])

    def _fail(self, why: str) -> None:
        self.counts["failures"] += 1
        self.last_error = why
        self.get_logger().error(why)

    # -- diagnostics ---------------------------------------------------------------------------
    def _diagnostics(self) -> tuple[int, str, dict[str, object]]:
        busy = self._busy_since is not None
        if self.last_error:
            level, message = WARN, self.last_error
        elif self.counts["images"] == 0:
            level, message = WARN, "no images received"
        elif busy:
            level, message = OK, "request running"
        else:
            level, message = (
                OK,
                f"last estimate: {self.last_estimate}" if self.last_estimate else "idle",
            )
        return (
            level,
            message,
            {
                "base_url": self.client.display_url,
                "model": self.client.model,
                "busy": busy,
                "latency_p50_ms": self.latency.percentile(50),
                "latency_p95_ms": self.latency.percentile(95),
                "retries": self.client.retries,
                "last_estimate": self.last_estimate,
                **self.counts,
            },
        )

    def destroy_node(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self.client.cancel()
        self._worker.join(timeout=2.0)  # a request in flight ends at its timeout (daemon thread)
        if not self._worker.is_alive():
            self.client.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(GeoLocalizerNode, args)


if __name__ == "__main__":
    main()
