"""A local fake of a deploy-webhook receiver, for tests.

It checks deliveries the way a receiver following runhq's published webhook contract would,
independently of runhq's code (stdlib ``hmac`` only):

- ``X-Runhq-Timestamp`` (unix seconds) and ``X-Runhq-Signature: sha256=<hex>`` where ``<hex>`` is
  HMAC-SHA256, keyed by the shared secret, of ``"<timestamp>." + raw body``; compared in constant
  time; a timestamp more than ``tolerance_seconds`` away from the receiver's clock is stale;
- a bad or stale signature -> 401 ``{"error": "invalid signature"}`` (nothing deployed);
- ``Idempotency-Key``: a key already seen answers the first answer again without deploying
  again (``duplicate=True`` on the delivery);
- success: 202 ``{"deployment_id": "dep_<n>", "status": "queued"}``.

Every delivery is recorded with ``valid_signature``. It is a real HTTP server (stdlib
``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon threads)::

    with FakeDeployReceiver(secret="s3cret") as receiver:
        receiver.fail(503, times=1)         # next delivery answers 503
        receiver.hang(0.5, times=1)         # next delivery waits 0.5 s before answering
        ... receiver.url, receiver.deliveries, receiver.deploys ...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes._served import base_url_of, serve, shut

__all__ = ["DEFAULT_SECRET", "Delivery", "FakeDeployReceiver"]

DEFAULT_SECRET = "whsec_fakeRunhqDeploySecret0123456789"
DEPLOY_PATH = "/hooks/deploy"


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    valid_signature: bool
    fresh: bool  # timestamp within the tolerance
    duplicate: bool  # Idempotency-Key seen before
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class _Failure:
    status: int
    body: Any
    remaining: int


@dataclass
class FakeDeployReceiver:
    """Context manager running the receiver; ``clock`` gives its unix time (default: real)."""

    secret: str = DEFAULT_SECRET
    tolerance_seconds: int = 300
    clock: Callable[[], float] = time.time
    deliveries: list[Delivery] = field(default_factory=list)
    #: Accepted, first-time deliveries: what was actually deployed (decoded JSON bodies).
    deploys: list[Any] = field(default_factory=list)
    _answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _hangs: list[list[float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> FakeDeployReceiver:
        self._server, self._thread = serve(self, _Handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shut(self._server, self._thread)
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        return base_url_of(self._server, "FakeDeployReceiver")

    @property
    def url(self) -> str:
        """The deploy hook URL."""
        return self.base_url + DEPLOY_PATH

    def fail(self, status: int, body: Any = None, *, times: int = 1) -> None:
        """Answer the next ``times`` valid deliveries with ``status`` (nothing deployed)."""
        if body is None:
            body = {"error": "deploy service unavailable" if status >= 500 else "rejected"}
        with self._lock:
            self._failures.append(_Failure(status, body, times))

    def hang(self, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` deliveries (after deploying)."""
        with self._lock:
            self._hangs.append([seconds, float(times)])

    # -- behaviour -----------------------------------------------------------------------------

    def _check(self, headers: dict[str, str], body: bytes) -> tuple[bool, bool]:
        timestamp = headers.get("x-runhq-timestamp", "")
        signature = headers.get("x-runhq-signature", "")
        if not timestamp.isascii() or not timestamp.isdigit():
            return False, False
        fresh = abs(self.clock() - int(timestamp)) <= self.tolerance_seconds
        scheme, _, received = signature.partition("=")
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        valid = scheme == "sha256" and hmac.compare_digest(expected.encode(), received.encode())
        return valid, fresh

    def _receive(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]:
        valid, fresh = self._check(headers, body)
        key = headers.get("idempotency-key")
        duplicate = False
        status: int
        answer: Any
        with self._lock:
            hang = 0.0
            if self._hangs:
                hang = self._hangs[0][0]
                self._hangs[0][1] -= 1
                if self._hangs[0][1] <= 0:
                    self._hangs.pop(0)
            if path != DEPLOY_PATH or method != "POST":
                status, answer = 404, {"error": "not found"}
            elif not valid or not fresh:
                status, answer = 401, {"error": "invalid signature"}
            elif headers.get("content-type", "").split(";")[0].strip() != "application/json":
                status, answer = 415, {"error": "expected application/json"}
            elif key is not None and key in self._answers:
                duplicate = True
                status, answer = self._answers[key]
            elif self._failures:
                failure = self._failures[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
                status, answer = failure.status, failure.body
            else:
                try:
                    document = json.loads(body)
                except ValueError:
                    document = None
                if not isinstance(document, dict):
                    status, answer = 400, {"error": "body must be a JSON object"}
                else:
                    self.deploys.append(document)
                    status = 202
                    answer = {"deployment_id": f"dep_{len(self.deploys)}", "status": "queued"}
                    if key is not None:
                        self._answers[key] = (status, answer)
            self.deliveries.append(
                Delivery(method, path, headers, body, valid, fresh, duplicate, status)
            )
        return status, answer, hang


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeDeployReceiver/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def _dispatch(self, method: str) -> None:
        fake: FakeDeployReceiver = self.server.fake  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        status, answer, hang = fake._receive(method, self.path.split("?")[0], headers, body)
        if hang:
            time.sleep(hang)
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
