"""Issue #15 item 13: the GLOBE client against hostile servers (real local sockets): a huge body
is cut off, a slow drip cannot hold a request past its deadline, and credentials never reach
logs or diagnostics."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import numpy as np
import pytest

from lavpr_ros.core.text_retrieval import log_safe
from lavpr_ros.geo_client import GeoClient, GeoServerError, encode_jpeg, redact_url

JPEG = encode_jpeg(np.full((32, 32, 3), 90, np.uint8))


@contextmanager
def raw_server(respond: Callable[[socket.socket], None]) -> Iterator[str]:
    """A one-thread HTTP server on localhost whose answers are written by ``respond``."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, body = data.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(body) < length:
                    body += conn.recv(65536)
                with suppress(OSError):
                    respond(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    finally:
        stop.set()
        t.join(5)
        srv.close()


def _chat(text: str) -> bytes:
    return json.dumps({"model": "m", "choices": [{"message": {"content": text}}]}).encode()


def test_huge_response_is_cut_off() -> None:
    """Before: a 200 MB answer was read whole (681 MB RSS)."""
    sent = {"bytes": 0}

    def respond(conn: socket.socket) -> None:  # no content-length: a chunk stream that never ends
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        conn.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
        block = b"x" * 65536
        for _ in range(400):  # up to 26 MB
            conn.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            sent["bytes"] += len(block)

    with raw_server(respond) as url:
        client = GeoClient(base_url=url, model="m", timeout_s=20, max_retries=0)
        with pytest.raises(GeoServerError, match="larger than the limit of 4194304 bytes"):
            client.complete(JPEG)
        client.close()


def test_declared_huge_response_refused_from_header() -> None:
    def respond(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 209715200\r\n\r\n" + b"{" * 1000)

    with raw_server(respond) as url:
        client = GeoClient(base_url=url, model="m", timeout_s=5, max_retries=0)
        with pytest.raises(GeoServerError, match="209715200 bytes is larger than the limit"):
            client.complete(JPEG)


def test_slow_drip_cannot_outlive_the_deadline() -> None:
    """Before: the timeout was per read, so 1 byte/s held a 2 s timeout for 12 s."""
    body = _chat("Country: France")

    def respond(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for b in body:
            conn.sendall(bytes([b]))
            time.sleep(0.25)

    with raw_server(respond) as url:
        client = GeoClient(base_url=url, model="m", timeout_s=1.0, max_retries=0)
        t0 = time.monotonic()
        with pytest.raises(GeoServerError, match="timed out"):
            client.complete(JPEG)
        elapsed = time.monotonic() - t0
    # The drip would take len(body) * 0.25 s (~15 s); the deadline ends it after ~1 s plus one
    # drip interval. The bound is loose on purpose (a loaded machine), far below the drip time.
    assert elapsed < len(body) * 0.25 / 2


def test_normal_answer_still_read() -> None:
    body = _chat("Country: Norway\nCity: Oslo")

    def respond(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    with raw_server(respond) as url:
        client = GeoClient(base_url=url, model="m", timeout_s=5.0, max_retries=0)
        reply = client.complete(JPEG)
    assert "Oslo" in reply.text


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://user:hunter2@gpu-box:8000/v1", "http://***@gpu-box:8000/v1"),
        ("https://api.example/v1?api_key=hunter2&x=1", "https://api.example/v1?api_key=***&x=1"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1"),
    ],
)
def test_credentials_redacted_for_logs(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    client = GeoClient(base_url=url, model="m")
    assert client.display_url == shown and "hunter2" not in client.display_url


def test_errors_do_not_leak_credentials() -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    client = GeoClient(base_url=f"http://bob:hunter2@127.0.0.1:{free}/v1", model="m", max_retries=0)
    with pytest.raises(GeoServerError) as exc:
        client.complete(JPEG)
    assert "hunter2" not in str(exc.value) and "***@127.0.0.1" in str(exc.value)


def test_control_characters_escaped_for_logs() -> None:
    """Raw command text with control characters went to the log as is (forged log lines)."""
    evil = "go home\n[INFO] [place_map]: fake line\x1b[2J\r"
    safe = log_safe(evil)
    assert "\n" not in safe and "\x1b" not in safe and "\r" not in safe
    assert "\\n" in safe and "\\x1b" in safe
    assert log_safe("x" * 100, 10) == "x" * 10 + "..."
