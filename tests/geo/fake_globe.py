"""A local stand-in for a vLLM server running GLOBE: the chat-completions protocol over real HTTP.

``POST /v1/chat/completions`` answers with the next scripted :class:`Reply` (the last one repeats),
``GET /v1/models`` lists one model. Every request is recorded (path, headers, JSON body). The
server is bounded: it stops by itself after ``max_requests`` requests or ``lifetime_s`` seconds,
and always when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "GLOBE-Qwen2.5VL-7B"

NORWAY = (
    "<think>The road signs are in Norwegian and the vegetation is boreal; cars drive on the "
    "right.</think><answer>Country: Norway; City: Bodø; Coordinates: 67.28, 14.40</answer>"
)
FRANCE = "<think>French signage.</think><answer>country: France\ncity: Paris</answer>"


@dataclass
class Reply:
    """One scripted answer: HTTP ``status``, the model's ``content`` (or a ``raw`` body),
    an optional ``delay_s`` before answering, extra ``headers``."""

    content: str = NORWAY
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None
    headers: dict[str, str] | None = None


class FakeGlobeServer:
    def __init__(
        self, replies: list[Reply], max_requests: int = 50, lifetime_s: float = 120.0
    ) -> None:
        self.replies = list(replies) or [Reply()]
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._chat = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if outer._stopped or outer._budget_spent():
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # the client may have timed out and left

            def _over(self) -> bool:
                """Past the budget: drop the connection without an answer."""
                if outer._stopped:
                    self.close_connection = True
                return outer._stopped

            def do_GET(self) -> None:
                if self._over():
                    return
                outer._record(self, None)
                if self.path.rstrip("/") == "/v1/models":
                    body = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
                    self._send(200, json.dumps(body).encode(), None)
                else:
                    self._send(404, b'{"error": "not found"}', None)

            def do_POST(self) -> None:
                if self._over():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                outer._record(self, body)
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}', None)
                    return
                reply = outer._next_reply()
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw is not None:
                    payload = reply.raw
                elif reply.status == 200:
                    payload = json.dumps(
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "model": MODEL,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": reply.content},
                                    "finish_reason": "stop",
                                }
                            ],
                        },
                        ensure_ascii=False,
                    ).encode()
                else:
                    payload = json.dumps({"error": {"message": reply.content}}).encode()
                self._send(reply.status, payload, reply.headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._stopped = False

    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        with self._lock:
            self.requests.append(
                {"method": handler.command, "path": handler.path, "headers": dict(handler.headers),
                 "body": body, "t": time.monotonic()}
            )  # fmt: skip
            n = len(self.requests)
        if n >= self.max_requests:
            threading.Thread(target=self.stop, daemon=True).start()

    def _budget_spent(self) -> bool:
        with self._lock:
            return len(self.requests) >= self.max_requests

    def _next_reply(self) -> Reply:
        with self._lock:
            reply = self.replies[min(self._chat, len(self.replies) - 1)]
            self._chat += 1
            return reply

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"] == "/v1/chat/completions"]

    def start(self) -> FakeGlobeServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeGlobeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
