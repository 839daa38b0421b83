"""An rclpy node inside a Python process (tests, the demo, bag replay, benchmarks).

It has its own rclpy context and executor thread, so it can live next to other rclpy users in
the same process, and it is closed explicitly. Publish, collect messages, call services.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class RosClient:
    def __init__(self, name: str = "test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.received: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(Exception):
            self.executor.spin()

    def subscribe(self, msg_type: Any, topic: str, qos: Any = RELIABLE) -> list[Any]:
        store: list[Any] = []
        self.received[topic] = store

        def cb(msg: Any) -> None:
            with self._lock:
                store.append(msg)

        self.node.create_subscription(msg_type, topic, cb, qos)
        return store

    def publisher(self, msg_type: Any, topic: str, qos: Any = RELIABLE) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def wait_for_subscribers(
        self, pub: Any, n: int = 1, timeout: float = 30.0, settle_s: float = 0.3
    ) -> None:
        """Until ``n`` readers are matched, then ``settle_s`` for the reverse match: the writer
        sees a reader before that reader knows the writer, and what is sent in between is
        lost to it (volatile durability)."""
        deadline = time.monotonic() + timeout
        while pub.get_subscription_count() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {pub.topic_name}")
            time.sleep(0.05)
        time.sleep(settle_s)

    @staticmethod
    def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 30.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            self.wait_until(future.done, timeout, f"answer of {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
