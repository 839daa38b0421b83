"""/diagnostics for every node: rates, latencies, counters, in the standard DiagnosticArray."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node


class RateMeter:
    """Events per second over a sliding window (thread-safe)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._times.append(now)
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()

    def rate(self) -> float:
        with self._lock:
            now = time.monotonic()
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-6)
            return (len(self._times) - 1) / span


class LatencyMeter:
    """Recent latencies (ms) with percentiles (thread-safe)."""

    def __init__(self, size: int = 500) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._values.append(ms)

    def percentile(self, q: float) -> float:
        with self._lock:
            if not self._values:
                return float("nan")
            vals = sorted(self._values)
        idx = min(len(vals) - 1, max(0, round(q / 100.0 * (len(vals) - 1))))
        return vals[idx]


class RecentWarning:
    """The last problem, reported as WARN only for ``hold_s`` after it happened: one rejected
    frame must not leave a node's diagnostics at WARN forever (thread-safe)."""

    def __init__(self, hold_s: float = 10.0) -> None:
        self.hold_s = hold_s
        self._msg = ""
        self._at = -float("inf")
        self._lock = threading.Lock()

    def set(self, msg: str) -> None:
        with self._lock:
            self._msg, self._at = msg, time.monotonic()

    def get(self) -> str:
        """The warning while it is recent, else ''."""
        with self._lock:
            return self._msg if time.monotonic() - self._at < self.hold_s else ""

    @property
    def last(self) -> str:
        """The last warning ever raised ('' if none), for counters and logs."""
        with self._lock:
            return self._msg


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on /diagnostics every ``period_s``."""

    def __init__(
        self,
        node: Node,
        collect: Callable[[], tuple[int, str, dict[str, object]]],
        period_s: float = 1.0,
    ) -> None:
        self._node = node
        self._collect = collect
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)

    def set_period(self, period_s: float) -> None:
        """Publish every ``period_s`` from now on (a live diagnostics_period_s)."""
        if not period_s > 0:
            raise ValueError(f"diagnostics period must be > 0 [s], got {period_s}")
        old, self._timer = self._timer, self._node.create_timer(period_s, self.publish)
        self._node.destroy_timer(old)

    def publish(self) -> None:
        level, message, values = self._collect()
        status = DiagnosticStatus()
        status.level = bytes([level])
        status.name = f"lavpr_ros: {self._node.get_fully_qualified_name()}"
        status.hardware_id = "lavpr_ros"
        status.message = message
        status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self._node.get_clock().now().to_msg()
        arr.status = [status]
        self._pub.publish(arr)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


OK = 0
WARN = 1
ERROR = 2
