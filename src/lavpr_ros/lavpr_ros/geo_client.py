"""HTTP client of an OpenAI-compatible chat-completions server (vLLM serving GLOBE).

One call, :meth:`GeoClient.localize`, sends one JPEG with :data:`~lavpr_ros.core.geo.GLOBE_PROMPT`
and returns the parsed answer. It blocks (run it on a worker thread) and retries with exponential
backoff on timeouts, connection errors and HTTP 429/5xx (honouring ``Retry-After``), never on
other 4xx (a wrong key or model name does not get better by asking again). Settings come from
arguments, else the environment: ``LAVPR_GEO_BASE_URL`` (default ``http://localhost:8000/v1``;
the URL includes the ``/v1`` prefix, as with the openai client), ``LAVPR_GEO_MODEL`` (empty = the
first model the server lists on ``GET /models``), ``LAVPR_GEO_API_KEY`` or ``OPENAI_API_KEY``
(optional; sent as a Bearer token, never logged).
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np
from PIL import Image

from lavpr_ros.core.geo import GLOBE_PROMPT, GeoAnswer, parse_answer

DEFAULT_BASE_URL = "http://localhost:8000/v1"
# A chat-completions answer is a few kB; a server (or something posing as one) sending more is
# cut off here, so a robot's memory is not at its mercy.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_SECRET_PARAMS = ("key", "token", "secret", "password", "passwd", "sig", "auth")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class GeoServerError(RuntimeError):
    """The server could not be used (the message says why: status, body, network error)."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass
class GeoReply:
    text: str  # the model's raw reply
    model: str
    latency_ms: float  # the successful request's round trip
    attempts: int  # requests made (1 = no retry)


def encode_jpeg(image: np.ndarray, max_side: int = 1024, quality: int = 90) -> bytes:
    """HxWx3 RGB uint8 -> JPEG bytes, downscaled so the longer side is at most ``max_side``
    (<= 0: no limit)."""
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")
    if max_side > 0 and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(min(max(quality, 1), 100)))
    return buf.getvalue()


def env_settings(base_url: str = "", model: str = "", api_key: str = "") -> tuple[str, str, str]:
    """(base_url, model, api_key): the arguments where given, else the environment."""
    url = base_url or os.environ.get("LAVPR_GEO_BASE_URL", "") or DEFAULT_BASE_URL
    mdl = model or os.environ.get("LAVPR_GEO_MODEL", "")
    key = api_key or os.environ.get("LAVPR_GEO_API_KEY", "") or os.environ.get("OPENAI_API_KEY", "")
    return url.rstrip("/"), mdl, key


class GeoClient:
    """Blocking client; one request at a time per instance (callers serialise)."""

    def __init__(
        self,
        base_url: str = "",
        model: str = "",
        api_key: str = "",
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 1.0,
        max_tokens: int = 1024,
        temperature: float = 0.1,
        prompt: str = GLOBE_PROMPT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url, self.model, api_key = env_settings(base_url, model, api_key)
        self.display_url = redact_url(self.base_url)  # for logs and diagnostics
        self.max_response_bytes = int(max_response_bytes)
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.prompt = prompt
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers)
        self._cancel = threading.Event()
        self.retries = 0  # total retries made over the client's life

    def close(self) -> None:
        self.cancel()
        self._http.close()

    def cancel(self) -> None:
        """Stop waiting between retries (the request in flight ends at its timeout)."""
        self._cancel.set()

    # ------------------------------------------------------------------ requests
    def _request(
        self, method: str, path: str, json_body: dict | None = None
    ) -> tuple[httpx.Response, int]:
        """One request with retries: (a 2xx response, attempts made), or GeoServerError.

        ``timeout_s`` bounds each attempt as a whole (connect + send + every read), not each
        read, and the body is read up to ``max_response_bytes``."""
        url = f"{self.base_url}{path}"
        shown = f"{self.display_url}{path}"
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                resp = self._bounded_request(method, url, json_body)
            except _TooLarge as exc:
                raise GeoServerError(f"{method} {shown}: {exc}", None, attempt) from None
            except httpx.TimeoutException as exc:
                why, status = f"timed out after {self.timeout_s:g} s ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                detail = _redact_text(str(exc)) or type(exc).__name__
                why, status = f"connection error: {detail}", None
            else:
                if resp.is_success:
                    return resp, attempt
                status = resp.status_code
                why = f"HTTP {status}: {_body_snippet(resp)}"
                if status not in RETRY_STATUS and not 500 <= status < 600:
                    raise GeoServerError(f"{method} {shown}: {why}", status, attempt)
                retry_after = _retry_after(resp)
            if attempt > self.max_retries or self._cancel.is_set():
                raise GeoServerError(
                    f"{method} {shown}: {why} (gave up after {attempt} attempt(s))", status, attempt
                )
            delay = self.backoff_s * 2 ** (attempt - 1)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
            self.retries += 1
            if self._cancel.wait(delay):
                raise GeoServerError(f"{method} {shown}: cancelled while retrying ({why})", status)

    def _bounded_request(self, method: str, url: str, json_body: dict | None) -> httpx.Response:
        """The response with its body read under a total deadline and a size cap."""
        deadline = time.monotonic() + self.timeout_s
        with self._http.stream(method, url, json=json_body) as resp:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                raise _TooLarge(
                    f"response of {int(declared)} bytes is larger than the limit of "
                    f"{self.max_response_bytes} bytes: refused"
                )
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _TooLarge(
                        f"response larger than the limit of {self.max_response_bytes} bytes: "
                        "cut off"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("total request deadline exceeded while reading")
            headers = [
                (k, v)
                for k, v in resp.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]
            return httpx.Response(
                resp.status_code, headers=headers, content=b"".join(chunks), request=resp.request
            )

    def resolve_model(self) -> str:
        """The model name to send: the configured one, else the first the server lists."""
        if self.model:
            return self.model
        resp, _ = self._request("GET", "/models")
        try:
            self.model = str(resp.json()["data"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise GeoServerError(
                f"GET {self.display_url}/models: no model listed ({_body_snippet(resp)}); set the "
                "model name (parameter model / LAVPR_GEO_MODEL)"
            ) from exc
        return self.model

    def complete(self, jpeg: bytes) -> GeoReply:
        """Send one image with the prompt; returns the model's raw reply text."""
        model = self.resolve_model()
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        body = {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_url}},
                        {"type": "text", "text": self.prompt},
                    ],
                }
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        t0 = time.perf_counter()
        resp, attempts = self._request("POST", "/chat/completions", body)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        try:
            payload = resp.json()
            choice = payload["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise GeoServerError(
                f"POST {self.display_url}/chat/completions: not a chat-completions response "
                f"({_body_snippet(resp)})",
                resp.status_code,
            ) from exc
        if isinstance(text, list):  # content parts
            text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
        return GeoReply(
            text=str(text or ""),
            model=str(payload.get("model") or model),
            latency_ms=latency_ms,
            attempts=attempts,
        )

    def localize(self, jpeg: bytes) -> tuple[GeoAnswer, GeoReply]:
        """Send one image and parse the reply (GeoParseError when the reply is unusable)."""
        reply = self.complete(jpeg)
        return parse_answer(reply.text), reply


def _body_snippet(resp: httpx.Response, n: int = 200) -> str:
    try:
        text = resp.text
    except Exception:
        return "<unreadable body>"
    text = " ".join(text.split())
    return (text[:n] + "...") if len(text) > n else (text or "<empty body>")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _TooLarge(Exception):
    """The server's answer exceeds max_response_bytes (never retried)."""


def redact_url(url: str) -> str:
    """``url`` without credentials: user:password@ and secret-looking query values masked, so
    it can go to logs and /diagnostics (which anyone on the ROS graph reads)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if any(t in k.lower() for t in _SECRET_PARAMS) else v) for k, v in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_text(text: str) -> str:
    """Error texts of httpx may quote the URL: mask userinfo in any URL inside."""
    import re

    return re.sub(r"(\w+://)[^/\s@]+@", r"\1***@", text)
