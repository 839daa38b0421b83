"""geo_client against a real local HTTP server speaking chat-completions (fake_globe)."""

from __future__ import annotations

import base64
import io
import socket
import time

import numpy as np
import pytest
from fake_globe import FRANCE, MODEL, NORWAY, FakeGlobeServer, Reply
from PIL import Image

from lavpr_ros.core.geo import GLOBE_PROMPT, GeoParseError
from lavpr_ros.geo_client import GeoClient, GeoServerError, encode_jpeg, env_settings

JPEG = encode_jpeg(np.full((48, 64, 3), 120, np.uint8))


def _client(server: FakeGlobeServer, **kw) -> GeoClient:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("backoff_s", 0.05)
    return GeoClient(base_url=server.base_url, **kw)


def test_success_sends_image_prompt_and_key() -> None:
    with FakeGlobeServer([Reply(NORWAY)]) as server:
        client = _client(server, api_key="sekret", model="")
        answer, reply = client.localize(JPEG)
        client.close()
    assert (answer.country, answer.city) == ("Norway", "Bodø")
    assert answer.latitude == pytest.approx(67.28)
    assert reply.model == MODEL and reply.attempts == 1 and reply.latency_ms > 0
    # The model name was asked from GET /v1/models, then one chat request.
    assert [r["path"] for r in server.requests] == ["/v1/models", "/v1/chat/completions"]
    chat = server.chat_requests[0]
    assert chat["headers"]["Authorization"] == "Bearer sekret"
    body = chat["body"]
    assert body["model"] == MODEL
    parts = body["messages"][0]["content"]
    assert parts[1] == {"type": "text", "text": GLOBE_PROMPT}
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.format == "JPEG" and img.size == (64, 48)


def test_retries_500_then_succeeds() -> None:
    with FakeGlobeServer([Reply("overloaded", status=500), Reply(FRANCE)]) as server:
        client = _client(server, model="m", max_retries=2)
        answer, reply = client.localize(JPEG)
    assert (answer.country, answer.city) == ("France", "Paris")
    assert reply.attempts == 2 and client.retries == 1
    assert len(server.chat_requests) == 2


def test_gives_up_after_500_forever_with_backoff() -> None:
    with FakeGlobeServer([Reply("boom", status=500)]) as server:
        client = _client(server, model="m", max_retries=3, backoff_s=0.1)
        t0 = time.monotonic()
        with pytest.raises(GeoServerError, match=r"HTTP 500.*gave up after 4 attempt") as err:
            client.complete(JPEG)
        elapsed = time.monotonic() - t0
    assert err.value.status == 500 and err.value.attempts == 4
    assert len(server.chat_requests) == 4
    assert elapsed >= 0.1 + 0.2 + 0.4 - 0.05  # exponential backoff between the attempts
    t = [r["t"] for r in server.chat_requests]
    assert t[3] - t[2] > t[1] - t[0]


def test_401_is_not_retried() -> None:
    with FakeGlobeServer([Reply("invalid api key", status=401), Reply(NORWAY)]) as server:
        client = _client(server, model="m", max_retries=3)
        with pytest.raises(GeoServerError, match="HTTP 401.*invalid api key") as err:
            client.complete(JPEG)
    assert err.value.status == 401 and len(server.chat_requests) == 1


def test_429_honours_retry_after() -> None:
    replies = [Reply("slow down", status=429, headers={"Retry-After": "0.5"}), Reply(NORWAY)]
    with FakeGlobeServer(replies) as server:
        client = _client(server, model="m", backoff_s=0.01)
        answer, reply = client.localize(JPEG)
    t = [r["t"] for r in server.chat_requests]
    assert answer.country == "Norway" and reply.attempts == 2 and t[1] - t[0] >= 0.45


def test_timeout_then_retry_succeeds() -> None:
    with FakeGlobeServer([Reply(FRANCE, delay_s=2.0), Reply(NORWAY)]) as server:
        client = _client(server, model="m", timeout_s=0.5, max_retries=1)
        t0 = time.monotonic()
        answer, reply = client.localize(JPEG)
        assert time.monotonic() - t0 < 1.9  # did not wait for the slow reply
    assert answer.country == "Norway" and reply.attempts == 2


def test_timeout_forever_reports_it() -> None:
    with FakeGlobeServer([Reply(FRANCE, delay_s=1.5)]) as server:
        client = _client(server, model="m", timeout_s=0.3, max_retries=1)
        with pytest.raises(GeoServerError, match=r"timed out after 0.3 s.*2 attempt"):
            client.complete(JPEG)


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = GeoClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2,
                       backoff_s=0.01, timeout_s=2.0)  # fmt: skip
    with pytest.raises(GeoServerError, match=r"connection error.*3 attempt"):
        client.complete(JPEG)
    assert client.retries == 2


def test_not_a_chat_completion_and_garbage_replies() -> None:
    replies = [
        Reply(raw=b"<html>proxy error</html>"),
        Reply(raw=b'{"choices": []}'),
        Reply("lorem ipsum, no answer at all"),
        Reply("<answer>somewhere</answer>"),
    ]
    with FakeGlobeServer(replies) as server:
        client = _client(server, model="m", max_retries=0)
        with pytest.raises(GeoServerError, match="not a chat-completions response.*proxy"):
            client.complete(JPEG)
        with pytest.raises(GeoServerError, match="not a chat-completions response"):
            client.complete(JPEG)
        with pytest.raises(GeoParseError, match="no <answer> block"):
            client.localize(JPEG)
        with pytest.raises(GeoParseError, match="no Country/City"):
            client.localize(JPEG)
    assert len(server.chat_requests) == 4


def test_server_stops_by_itself_after_its_request_budget() -> None:
    server = FakeGlobeServer([Reply(NORWAY)], max_requests=2).start()
    client = _client(server, model="m", max_retries=0, timeout_s=2.0)
    client.complete(JPEG)
    client.complete(JPEG)
    time.sleep(0.3)
    with pytest.raises(GeoServerError, match="connection error"):
        client.complete(JPEG)
    server.stop()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("LAVPR_GEO_BASE_URL", "LAVPR_GEO_MODEL", "LAVPR_GEO_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    assert env_settings() == ("http://localhost:8000/v1", "", "")
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    monkeypatch.setenv("LAVPR_GEO_BASE_URL", "http://gpu:8081/v1/")
    monkeypatch.setenv("LAVPR_GEO_MODEL", "qwen2.5-vl")
    assert env_settings() == ("http://gpu:8081/v1", "qwen2.5-vl", "k1")
    monkeypatch.setenv("LAVPR_GEO_API_KEY", "k2")
    assert env_settings()[2] == "k2"
    assert env_settings("http://x/v1", "m", "k3") == ("http://x/v1", "m", "k3")


def test_encode_jpeg_caps_the_size() -> None:
    img = np.random.default_rng(0).integers(0, 255, (600, 1000, 3), dtype=np.uint8)
    big = Image.open(io.BytesIO(encode_jpeg(img, max_side=0)))
    small = Image.open(io.BytesIO(encode_jpeg(img, max_side=256, quality=50)))
    assert big.size == (1000, 600) and small.size == (256, 154)
