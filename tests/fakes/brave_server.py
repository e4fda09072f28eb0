"""A local fake of the Brave Search Web Search API, for tests.

Written from Brave's public API documentation, not from runhq's code:

- ``GET /res/v1/web/search?q=…&count=…&offset=…`` authenticated by ``X-Subscription-Token``;
  a missing or wrong token -> 422 ``SUBSCRIPTION_TOKEN_INVALID``;
- ``q`` required (non-empty, at most 400 characters and 50 words), ``count`` 1–20 (default 20),
  ``offset`` 0–9; violations -> 422 ``VALIDATION``;
- success: a ``WebSearchApiResponse`` (``{"type": "search", "query": {...}, "web": {"type":
  "search", "results": [...]}, "mixed": {...}}``; no ``web`` section when nothing matched),
  results highlighted with ``<strong>`` like the real service;
- errors: ``{"type": "ErrorResponse", "error": {"id", "status", "code", "detail", "meta"},
  "time"}``; rate limiting -> 429 ``RATE_LIMITED`` with ``X-RateLimit-*`` headers.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon
threads)::

    with FakeBrave() as fake:
        fake.results["runhq"] = [make_result("runhq", "https://runhq.example", "AI ops HQ")]
        fake.rate_limit(times=1)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._served import base_url_of, serve, shut

__all__ = [
    "DEFAULT_API_KEY",
    "FakeBrave",
    "RecordedRequest",
    "error_body",
    "make_result",
]

JSONDict = dict[str, Any]

DEFAULT_API_KEY = "BSAfakeRunhqBraveKey0123456789"
SEARCH_PATH = "/res/v1/web/search"


def error_body(
    status: int, code: str, detail: str, meta: Mapping[str, Any] | None = None
) -> JSONDict:
    """Brave's ``ErrorResponse``."""
    return {
        "type": "ErrorResponse",
        "error": {
            "id": str(uuid.uuid4()),
            "status": status,
            "code": code,
            "detail": detail,
            "meta": dict(meta or {}),
        },
        "time": int(time.time()),
    }


def rate_limited_body() -> JSONDict:
    return error_body(
        429,
        "RATE_LIMITED",
        "Request rate limit exceeded for plan.",
        {"plan": "Free", "rate_limit": 1, "rate_current": 2, "component": "rate_limiter"},
    )


def make_result(title: str, url: str, description: str, *, age: str | None = None) -> JSONDict:
    """A web ``SearchResult``."""
    host = urlsplit(url).netloc
    result: JSONDict = {
        "type": "search_result",
        "subtype": "generic",
        "title": title,
        "url": url,
        "description": description,
        "is_source_local": False,
        "is_source_both": False,
        "language": "en",
        "family_friendly": True,
        "profile": {"name": host, "url": url, "long_name": host, "img": ""},
        "meta_url": {"scheme": urlsplit(url).scheme, "netloc": host, "hostname": host, "path": ""},
    }
    if age is not None:
        result["age"] = age
    return result


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int | None


@dataclass
class FakeBrave:
    """Context manager running the fake; ``results`` maps a query (case-insensitive) to its
    results; ``default_results`` answers any other query."""

    api_key: str = DEFAULT_API_KEY
    results: dict[str, list[JSONDict]] = field(default_factory=dict)
    default_results: list[JSONDict] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> FakeBrave:
        self._server, self._thread = serve(self, _Handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shut(self._server, self._thread)
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        return base_url_of(self._server, "FakeBrave")

    def set_results(self, query: str, results: Sequence[JSONDict]) -> None:
        with self._lock:
            self.results[query.lower()] = list(results)

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (all if None) with ``status`` and ``body``."""
        if body is None:
            body = (
                rate_limited_body()
                if status == 429
                else error_body(status, "INTERNAL_ERROR", "An internal error occurred.")
            )
        with self._lock:
            self._failures.append(_Failure(status, body, dict(headers or {}), times))

    def rate_limit(self, *, times: int | None = None, reset_seconds: int = 1) -> None:
        """Answer 429 ``RATE_LIMITED`` like the real plan limiter (with ``X-RateLimit-*``)."""
        self.fail(
            429,
            rate_limited_body(),
            times=times,
            headers={
                "X-RateLimit-Limit": "1, 2000",
                "X-RateLimit-Policy": "1;w=1, 2000;w=2592000",
                "X-RateLimit-Remaining": "0, 1975",
                "X-RateLimit-Reset": f"{reset_seconds}, 1419704",
            },
        )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    # -- behaviour -----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> _Failure | None:
        with self._lock:
            self.requests.append(request)
            if not self._failures:
                return None
            failure = self._failures[0]
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
            return failure

    def _handle(
        self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, JSONDict, dict[str, str]]:
        if path != SEARCH_PATH:
            return 404, error_body(404, "NOT_FOUND", "Resource not found."), {}
        if headers.get("x-subscription-token") != self.api_key:
            return (
                422,
                error_body(
                    422,
                    "SUBSCRIPTION_TOKEN_INVALID",
                    "The provided subscription token is invalid.",
                    {"component": "authentication"},
                ),
                {},
            )
        q = (query.get("q") or [""])[0]
        if not q.strip() or len(q) > 400 or len(q.split()) > 50:
            return 422, _validation("q", "The query must be 1-400 characters and 50 words."), {}
        try:
            count = int((query.get("count") or ["20"])[0])
            offset = int((query.get("offset") or ["0"])[0])
        except ValueError:
            return 422, _validation("count", "count and offset must be integers."), {}
        if not 1 <= count <= 20:
            return 422, _validation("count", "Input should be less than or equal to 20"), {}
        if not 0 <= offset <= 9:
            return 422, _validation("offset", "Input should be less than or equal to 9"), {}
        with self._lock:
            pool = self.results.get(q.lower(), self.default_results)
            chosen = json.loads(json.dumps(pool[offset * count : (offset + 1) * count]))
            more = len(pool) > (offset + 1) * count
        for result in chosen:
            result["description"] = _highlight(result.get("description", ""), q)
        body: JSONDict = {
            "type": "search",
            "query": {
                "original": q,
                "show_strict_warning": False,
                "is_navigational": False,
                "spellcheck_off": True,
                "country": "us",
                "more_results_available": more,
            },
            "mixed": {
                "type": "mixed",
                "main": [{"type": "web", "index": i, "all": False} for i in range(len(chosen))],
                "top": [],
                "side": [],
            },
        }
        if chosen:
            body["web"] = {"type": "search", "results": chosen, "family_friendly": True}
        headers_out = {
            "X-RateLimit-Limit": "1, 2000",
            "X-RateLimit-Remaining": "0, 1999",
            "X-RateLimit-Reset": "1, 1419704",
        }
        return 200, body, headers_out


def _validation(param: str, detail: str) -> JSONDict:
    return error_body(
        422,
        "VALIDATION",
        "Unable to validate request parameter(s)",
        {"errors": [{"type": "value_error", "loc": ["query", param], "msg": detail}]},
    )


def _highlight(text: str, query: str) -> str:
    """Wrap the query's words in ``<strong>`` tags, as Brave does in descriptions."""
    words = {word.lower() for word in query.split() if len(word) > 2}
    return " ".join(
        f"<strong>{token}</strong>" if token.lower().strip(".,;:!?") in words else token
        for token in text.split(" ")
    )


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeBrave/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        fake: FakeBrave = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        query = parse_qs(split.query, keep_blank_values=True)
        failure = fake._record(RecordedRequest("GET", split.path, query, headers))
        if failure is not None:
            self._send(failure.status, failure.body, failure.headers)
            return
        self._send(*fake._handle(split.path, query, headers))

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
