"""vpr_encoder: camera images in, global place descriptors out (vpr/descriptor).

Only the newest frames are encoded: on a live camera at most ``live_queue`` frames wait (default
1: the newest; an image then waits at most one encode before its own, which bounds image ->
descriptor latency when the camera is faster than the encoder), older ones are dropped and
counted, as are frames older than ``max_frame_age_s`` behind the newest; several pending frames
are encoded together as one micro-batch of up to ``max_batch``. Lossless replays queue every
frame. Encoding runs on a worker thread so the executor keeps receiving while a batch is in the
model.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from lavpr_interfaces.msg import PlaceDescriptor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from lavpr_ros.core.encoders import Encoder, create_encoder
from lavpr_ros.core.images import (
    DEFAULT_MAX_PIXELS,
    ImageFormatError,
    image_from_compressed,
    image_from_raw,
)
from lavpr_ros.nodes.convert import stamp_to_sec
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
from lavpr_ros.nodes.params import (
    RELIABLE_INPUT,
    LiveParameters,
    Param,
    declare,
    parse_providers,
    prepare_periods,
    sensor_qos,
)
from lavpr_ros.nodes.runner import run_node

DEFAULT_ENCODER = "fuse:0.3*patchnorm+0.7*mobilenetv2-gem-imagenet"

PARAMS = [
    Param(
        "encoder",
        DEFAULT_ENCODER,
        "Image encoder: 'patchnorm[:WxH[:P]]', a model manifest (.yaml or its directory), a "
        "TensorRT .engine with its manifest, or a weighted fusion 'fuse:W1*SPEC1+W2*SPEC2'",
    ),
    Param(
        "providers",
        "",
        "Comma-separated ONNX Runtime execution providers in order of "
        "preference (e.g. 'cuda,cpu'); empty = TensorRT -> CUDA -> CPU among those available",
    ),
    Param("trt_cache_dir", "", "TensorRT engine cache folder (empty = trt_cache/ by the model)"),
    Param("subscribe_raw", True, "Subscribe camera/image_raw (sensor_msgs/Image)"),
    Param(
        "subscribe_compressed",
        False,
        "Subscribe camera/image_raw/compressed (sensor_msgs/CompressedImage)",
    ),
    Param("max_batch", 4, "Most frames encoded together when the encoder falls behind"),
    Param(
        "live_queue",
        1,
        "Frames waiting for the encoder on a live camera (the newest; older ones are dropped and "
        "counted): 1 bounds image->descriptor latency to about two encodes; more keeps more "
        "frames (encoded as micro-batches) at the cost of latency. Lossless replays "
        "(reliable_input with max_frame_age_s <= 0) queue every frame",
    ),
    Param(
        "max_image_pixels",
        DEFAULT_MAX_PIXELS,
        "Images with more pixels are refused from their header, before decoding (a small PNG "
        "can declare gigapixels); <= 0 = only the built-in sanity limit",
    ),
    Param(
        "max_frame_age_s",
        0.5,
        "Pending frames older than this behind the newest are dropped "
        "[s, image stamps]; <= 0 keeps every buffered frame",
    ),
    RELIABLE_INPUT,
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics messages [s]", live=True),
    AUTOSTART,
]


@dataclass
class _Frame:
    header: Header
    image: np.ndarray
    received: float  # time.monotonic() at arrival


class VprEncoderNode(ManagedNode):
    """Managed node: configure loads the encoder, activate subscribes the camera."""

    def __init__(self) -> None:
        super().__init__("vpr_encoder")
        self.p = declare(self, PARAMS)
        self.encoder: Encoder | None = None
        self.failure = ""  # why the last configure failed
        self.max_batch = max(1, int(self.p["max_batch"]))
        self.max_pixels = int(self.p["max_image_pixels"])
        # Live: only the newest live_queue frames wait. Lossless replays (reliable_input and
        # max_frame_age_s <= 0: "keep every frame") queue them all; the encoder catches up.
        lossless = bool(self.p["reliable_input"]) and float(self.p["max_frame_age_s"]) <= 0
        self._pending: collections.deque[_Frame] = collections.deque(
            maxlen=None if lossless else max(1, int(self.p["live_queue"]))
        )
        self._cv = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
        self.received = self.encoded = self.dropped = self.rejected = 0
        self.in_rate, self.out_rate = RateMeter(), RateMeter()
        self.latency = LatencyMeter()
        self.warning = RecentWarning()
        self.started = time.monotonic()
        self.topics: list[str] = []
        self.pub: Any = None
        self.create_timer(5.0, self._check_input)
        self.diag = Diagnostics(self, self._diagnostics, float(self.p["diagnostics_period_s"]))
        self.live = LiveParameters(
            self,
            PARAMS,
            self.p,
            prepare_periods({"diagnostics_period_s": (self.diag.set_period, False)}),
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        kwargs: dict[str, object] = {}
        spec = str(self.p["encoder"])
        if not spec.startswith("patchnorm"):
            if self.p["providers"]:
                kwargs["providers"] = parse_providers(self.p["providers"])
            if self.p["trt_cache_dir"]:
                kwargs["trt_cache_dir"] = self.p["trt_cache_dir"]
        try:
            self.encoder = create_encoder(spec, **kwargs)
        except Exception as exc:  # a missing/corrupt model: stay unconfigured, say why
            self.failure = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.failure = ""
        self.get_logger().info(
            f"encoder {self.encoder.model_id} ({self.encoder.dim}-d) on {self.encoder.provider}"
        )
        self.pub = self.create_publisher(PlaceDescriptor, "vpr/descriptor", 50)
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="encoder", daemon=True)
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = sensor_qos(self.p["reliable_input"])
        if self.p["subscribe_raw"]:
            self.inputs.append(
                self.create_subscription(Image, "camera/image_raw", self._on_image, qos)
            )
        if self.p["subscribe_compressed"]:
            self.inputs.append(
                self.create_subscription(
                    CompressedImage, "camera/image_raw/compressed", self._on_compressed, qos
                )
            )
        self.topics = [s.topic_name for s in self.inputs]
        self.started = time.monotonic()
        print(f"[{self.get_name()}] ready", flush=True)
        return super().on_activate(state)

    def inputs_stopped(self) -> None:
        with self._cv:
            self._pending.clear()

    def release(self) -> None:
        self._stop = True
        with self._cv:
            self._pending.clear()
            self._cv.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        if self.pub is not None:
            self.destroy_publisher(self.pub)
            self.pub = None
        self.encoder = None

    # -- input ---------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self.received += 1
        self.in_rate.tick()
        try:
            img = image_from_raw(
                msg.data, msg.height, msg.width, msg.encoding, msg.step, self.max_pixels
            )
        except ImageFormatError as exc:
            self._reject(f"camera/image_raw: {exc}")
            return
        self._enqueue(_Frame(msg.header, img, time.monotonic()))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self.received += 1
        self.in_rate.tick()
        try:
            img = image_from_compressed(bytes(msg.data), msg.format, self.max_pixels)
        except ImageFormatError as exc:
            self._reject(f"camera/image_raw/compressed: {exc}")
            return
        self._enqueue(_Frame(msg.header, img, time.monotonic()))

    def _reject(self, why: str) -> None:
        self.rejected += 1
        self.warning.set(why)
        self.get_logger().warning(why, throttle_duration_sec=2.0)

    def _no_input_message(self) -> str:
        """Which topic is expected, and which image topics exist (a wrong remap is the usual
        cause of silence)."""
        kinds = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
        seen = [
            f"{name} [{t.split('/')[-1]}]"
            for name, types in self.get_topic_names_and_types()
            for t in types
            if t in kinds and name not in self.topics
        ]
        since = time.monotonic() - self.started
        return (
            f"no images received in {since:.0f} s on {', '.join(self.topics) or 'no topic'}; "
            + (
                f"image topics on the graph: {', '.join(seen)} (remap camera/image_raw?)"
                if seen
                else "no image topic on the graph"
            )
        )

    def _check_input(self) -> None:
        if self.received == 0 and self.inputs:
            self.get_logger().warning(self._no_input_message(), throttle_duration_sec=30.0)

    def _enqueue(self, frame: _Frame) -> None:
        with self._cv:
            if self._pending.maxlen is not None and len(self._pending) == self._pending.maxlen:
                self.dropped += 1  # the deque discards the oldest
            self._pending.append(frame)
            self._cv.notify()

    # -- encoding ------------------------------------------------------------------------------
    def _take_batch(self) -> list[_Frame]:
        with self._cv:
            while not self._pending and not self._stop:
                self._cv.wait(0.2)
            n = min(len(self._pending), self.max_batch)
            frames = [self._pending.popleft() for _ in range(n)]
        max_age = float(self.p["max_frame_age_s"])
        if frames and max_age > 0:
            newest = stamp_to_sec(frames[-1].header.stamp)
            fresh = [f for f in frames if newest - stamp_to_sec(f.header.stamp) <= max_age]
            self.dropped += len(frames) - len(fresh)
            frames = fresh
        return frames

    def _work(self) -> None:
        while not self._stop:
            frames = self._take_batch()
            if not frames:
                continue
            t0 = time.perf_counter()
            try:
                desc = self.encoder.encode([f.image for f in frames])
            except Exception as exc:
                self._reject(f"encoding failed: {exc}")
                continue
            per_frame_ms = (time.perf_counter() - t0) * 1000.0 / len(frames)
            for f, d in zip(frames, desc, strict=True):
                msg = PlaceDescriptor()
                msg.header = f.header
                msg.model_id = self.encoder.model_id
                msg.dim = int(d.shape[0])
                msg.descriptor = d.astype(np.float32).tolist()
                msg.encode_latency_ms = float(per_frame_ms)
                msg.provider = self.encoder.provider
                self.pub.publish(msg)
                self.encoded += 1
                self.out_rate.tick()
                self.latency.add((time.monotonic() - f.received) * 1000.0)

    def _diagnostics(self) -> tuple[int, str, dict[str, object]]:
        level, message = OK, "encoding"
        recent = self.warning.get()
        if self.received == 0 and self.inputs:
            level, message = WARN, self._no_input_message()
        elif recent:
            level, message = WARN, recent
        state = state_label(self)
        if state != "active" and self.failure:
            level, message = ERROR, f"configure failed: {self.failure}"
        elif state != "active":
            level, message = OK, f"{state} (lifecycle)"
        elif self._worker is None or not self._worker.is_alive():
            level, message = ERROR, "encoder thread died"
        return (
            level,
            message,
            {
                "lifecycle_state": state,
                "model_id": self.encoder.model_id if self.encoder else "",
                "execution_provider": self.encoder.provider if self.encoder else "",
                "input_rate_hz": self.in_rate.rate(),
                "output_rate_hz": self.out_rate.rate(),
                "latency_p50_ms": self.latency.percentile(50),
                "latency_p95_ms": self.latency.percentile(95),
                "received": self.received,
                "encoded": self.encoded,
                "dropped_frames": self.dropped,
                "rejected_frames": self.rejected,
                "last_warning": self.warning.last,
            },
        )

    def destroy_node(self) -> None:
        self.release()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(VprEncoderNode, args)


if __name__ == "__main__":
    main()
