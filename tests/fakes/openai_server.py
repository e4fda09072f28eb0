"""A local fake of the OpenAI Chat Completions HTTP API, for tests.

The fake is written from OpenAI's public API reference (request/response objects, the error
object, rate-limit headers), not from runhq's code, so that runhq is tested against the
protocol rather than against its own assumptions.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon
threads), so the official ``openai`` SDK can be pointed at it unchanged::

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
        fake.enqueue_rate_limit(retry_after_seconds=1)
        ...

Endpoints:
    ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``.
    Anything else gets a 404 ``Invalid URL (METHOD /path)`` error object.

Order of checks for a chat completion request: URL -> ``Authorization: Bearer`` key (401) ->
JSON body and parameter validation (400) -> model exists (404) -> scripted responses queued with
``enqueue_*`` (first one matching the request's model, FIFO) -> ``fake.responder``.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_MODELS",
    "SUPPORTED_ROLES",
    "FakeOpenAI",
    "OpenAIErrorResponse",
    "RecordedRequest",
    "Responder",
    "ScriptedResponse",
    "default_responder",
    "error_body",
    "estimate_tokens",
]

JSONDict = dict[str, Any]
Responder = Callable[[JSONDict], str]

DEFAULT_API_KEY = "sk-fake-runhq-test-key-0123456789"
DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o")
# "function" is deprecated but still accepted by the real API.
SUPPORTED_ROLES: tuple[str, ...] = ("system", "user", "assistant", "developer", "tool", "function")
SYSTEM_FINGERPRINT = "fp_fakeopenai"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

_SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_JSON_MODE_MESSAGE = (
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
    "'json_object'."
)
_BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
_NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> JSONDict:
    """Build an OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate used for ``usage``: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


def _json_type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def message_text(content: object) -> str:
    """Text of a message ``content``: a string, or the ``text`` of an array of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return ""


def _messages(body: Mapping[str, Any]) -> list[JSONDict]:
    raw = body.get("messages")
    if not isinstance(raw, list):
        return []
    return [m for m in raw if isinstance(m, dict)]


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def _response_format_type(body: Mapping[str, Any]) -> str | None:
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        value = response_format.get("type")
        return value if isinstance(value, str) else None
    return None


def default_responder(body: JSONDict) -> str:
    """Default assistant content.

    JSON mode (``response_format`` ``json_object`` or ``json_schema``): a JSON object string
    ``{"executive_summary", "sections": [{"title", "content"}], "recommendations": [...]}`` whose
    summary quotes the first 200 characters of the last user message. Otherwise a plain-text
    echo: ``"Echo: <last user message>"``.
    """
    last_user = _last_user_text(body)
    if _response_format_type(body) in ("json_object", "json_schema"):
        excerpt = last_user[:200]
        report = {
            "executive_summary": f'Fake summary of: "{excerpt}"',
            "sections": [
                {"title": "Overview", "content": f"Overview generated by the fake for: {excerpt}"},
                {"title": "Details", "content": "Deterministic placeholder details."},
            ],
            "recommendations": [
                "Review the generated report.",
                "Replace the fake responder for scenario-specific content.",
            ],
        }
        return json.dumps(report)
    return f"Echo: {last_user}"


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One HTTP request received by the fake (any path, including rejected ones)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased header names
    body: Any  # parsed JSON body, or None when absent/unparsable
    raw_body: bytes
    status: int | None = None  # status code the fake answered with (None until answered)

    @property
    def model(self) -> str | None:
        if isinstance(self.body, dict):
            model = self.body.get("model")
            return model if isinstance(model, str) else None
        return None


@dataclass
class ScriptedResponse:
    """A queued response, consumed (FIFO, per matching model) before the responder is used.

    ``body`` set: answer ``status`` with that JSON body (and ``headers``).
    ``body`` None: answer a normal chat completion, with ``content`` if set, else from the
    responder. ``delay_seconds`` is slept (interruptibly) before answering either way.
    """

    status: int = 200
    body: JSONDict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None
    finish_reason: str = "stop"
    delay_seconds: float = 0.0
    model: str | None = None  # only match requests for this model; None matches any


class OpenAIErrorResponse(Exception):
    """Raised internally to answer with an OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_=type_, param=param, code=code)
        self.headers = dict(headers or {})


def _bad_request(message: str, *, param: str | None, code: str | None) -> OpenAIErrorResponse:
    return OpenAIErrorResponse(400, message, param=param, code=code)


def _invalid_type(param: str, expected: str, value: object) -> OpenAIErrorResponse:
    got = _json_type_name(value)
    return _bad_request(
        f"Invalid type for '{param}': expected {_article(expected)} {expected}, "
        f"but got {_article(got)} {got} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> OpenAIErrorResponse:
    return _bad_request(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


# --------------------------------------------------------------------------------------------
# Request validation (mirrors the documented Chat Completions create parameters)
# --------------------------------------------------------------------------------------------


def _validate_content(index: int, message: JSONDict) -> None:
    param = f"messages[{index}].content"
    role = message.get("role")
    if "content" not in message:
        # An assistant message may omit content when it carries tool/function calls.
        if role == "assistant" and ("tool_calls" in message or "function_call" in message):
            return
        raise _missing(param)
    content = message["content"]
    if content is None and role == "assistant":
        return
    if isinstance(content, str):
        return
    if isinstance(content, list):
        for part_index, part in enumerate(content):
            part_param = f"{param}[{part_index}]"
            if not isinstance(part, dict):
                raise _invalid_type(part_param, "object", part)
            if "type" not in part:
                raise _missing(f"{part_param}.type")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                if "text" not in part:
                    raise _missing(f"{part_param}.text")
                raise _invalid_type(f"{part_param}.text", "string", part.get("text"))
        return
    raise _invalid_type(param, "string", content)


def _validate_messages(body: JSONDict) -> list[JSONDict]:
    if "messages" not in body:
        raise _missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _invalid_type("messages", "array", messages)
    if not messages:
        raise _bad_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid_type(f"messages[{index}]", "object", message)
        if "role" not in message:
            raise _missing(f"messages[{index}].role")
        role = message["role"]
        if role not in SUPPORTED_ROLES:
            supported = ", ".join(f"'{r}'" for r in SUPPORTED_ROLES[:-1])
            raise _bad_request(
                f"Invalid value: '{role}'. Supported values are: {supported}, "
                f"and '{SUPPORTED_ROLES[-1]}'.",
                param=f"messages[{index}].role",
                code="invalid_value",
            )
        _validate_content(index, message)
        if role == "tool" and "tool_call_id" not in message:
            raise _missing(f"messages[{index}].tool_call_id")
    return cast(list[JSONDict], messages)


def _validate_number(
    body: JSONDict, name: str, *, minimum: float, maximum: float, integer: bool = False
) -> None:
    if name not in body or body[name] is None:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_type(name, "integer" if integer else "number", value)
    if integer and not isinstance(value, int):
        raise _invalid_type(name, "integer", value)
    kind = "integer" if integer else "decimal"
    if value < minimum:
        raise _bad_request(
            f"Invalid '{name}': {kind} below minimum value. Expected a value >= {minimum:g}, "
            f"but got {value:g} instead.",
            param=name,
            code=f"{kind}_below_min_value",
        )
    if value > maximum:
        raise _bad_request(
            f"Invalid '{name}': {kind} above maximum value. Expected a value <= {maximum:g}, "
            f"but got {value:g} instead.",
            param=name,
            code=f"{kind}_above_max_value",
        )


def _validate_response_format(body: JSONDict, messages: list[JSONDict]) -> None:
    if "response_format" not in body or body["response_format"] is None:
        return
    response_format = body["response_format"]
    if not isinstance(response_format, dict):
        raise _invalid_type("response_format", "object", response_format)
    if "type" not in response_format:
        raise _missing("response_format.type")
    rf_type = response_format["type"]
    if rf_type not in ("text", "json_object", "json_schema"):
        raise _bad_request(
            f"Invalid value: '{rf_type}'. Supported values are: 'json_object', 'json_schema', "
            "and 'text'.",
            param="response_format.type",
            code="invalid_value",
        )
    if rf_type == "json_schema":
        schema = response_format.get("json_schema")
        if not isinstance(schema, dict):
            raise _missing("response_format.json_schema")
        if "name" not in schema:
            raise _missing("response_format.json_schema.name")
    if rf_type == "json_object":
        # JSON mode: the API rejects the request unless some message mentions "json".
        text = "\n".join(message_text(m.get("content")) for m in messages)
        if "json" not in text.lower():
            raise _bad_request(_JSON_MODE_MESSAGE, param="messages", code=None)


def validate_chat_request(body: object, models: Collection[str]) -> JSONDict:
    """Validate a Chat Completions create body; raise :class:`OpenAIErrorResponse` if invalid."""
    if not isinstance(body, dict):
        raise _bad_request(_BAD_JSON_MESSAGE, param=None, code=None)
    body = cast(JSONDict, body)
    if "model" not in body:
        raise _missing("model")
    model = body["model"]
    if not isinstance(model, str):
        raise _invalid_type("model", "string", model)
    messages = _validate_messages(body)
    if body.get("stream") is True:
        raise _bad_request(
            "Streaming is not supported by this fake server (stream=true).",
            param="stream",
            code="unsupported_value",
        )
    _validate_number(body, "n", minimum=1, maximum=128, integer=True)
    _validate_number(body, "temperature", minimum=0, maximum=2)
    _validate_number(body, "top_p", minimum=0, maximum=1)
    _validate_number(body, "max_tokens", minimum=1, maximum=10_000_000, integer=True)
    _validate_number(body, "max_completion_tokens", minimum=1, maximum=10_000_000, integer=True)
    _validate_response_format(body, messages)
    if model not in models:
        raise OpenAIErrorResponse(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            param=None,
            code="model_not_found",
        )
    return body


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    sys_version = ""

    @property
    def fake(self) -> FakeOpenAI:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        self.fake._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output quiet

    def do_GET(self) -> None:
        self.fake._handle(self)

    def do_POST(self) -> None:
        self.fake._handle(self)

    def do_PUT(self) -> None:
        self.fake._handle(self)

    def do_PATCH(self) -> None:
        self.fake._handle(self)

    def do_DELETE(self) -> None:
        self.fake._handle(self)

    def read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, body: object, headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            # The client went away (e.g. it timed out first); nothing left to answer.
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeOpenAI:
    """Local fake of OpenAI's Chat Completions API. Starts serving on construction.

    Public API:
        base_url, api_key, models, port, url
        requests (snapshot list of RecordedRequest), chat_requests, last_request
        responder (Callable[[dict], str]; assign to replace)
        enqueue(ScriptedResponse) and enqueue_rate_limit / enqueue_insufficient_quota /
        enqueue_server_error / enqueue_timeout / enqueue_content / enqueue_status
        pending_scripted(), reset(), close(); usable as a context manager.
    """

    def __init__(
        self,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        api_key: str = DEFAULT_API_KEY,
        responder: Responder | None = None,
        rate_limit_requests: int = 10_000,
        rate_limit_tokens: int = 2_000_000,
    ) -> None:
        self.api_key = api_key
        self.models: list[str] = list(models)
        self.responder: Responder = responder or default_responder
        self.rate_limit_requests = rate_limit_requests
        self.rate_limit_tokens = rate_limit_tokens

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._script: list[ScriptedResponse] = []
        self._connections: set[socket.socket] = set()
        self._requests_used = 0
        self._tokens_used = 0
        self._closed = False

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port: int = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"FakeOpenAI:{self.port}",
            daemon=True,
        )
        self._thread.start()

    # ---- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving. Never hangs: sleeping (timeout-scenario) handlers are woken up."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections)
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._closed

    def reset(self) -> None:
        """Forget recorded requests and scripted responses; restore the default responder."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._requests_used = 0
            self._tokens_used = 0
        self.responder = default_responder

    # ---- inspection -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Snapshot of the ``POST /v1/chat/completions`` requests only."""
        return [r for r in self.requests if r.method == "POST" and r.path == CHAT_COMPLETIONS_PATH]

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def pending_scripted(self, model: str | None = None) -> int:
        """Number of scripted responses not consumed yet (optionally only those for ``model``)."""
        with self._lock:
            return sum(1 for s in self._script if model is None or s.model == model)

    # ---- scripting ------------------------------------------------------------------------

    def enqueue(self, *responses: ScriptedResponse) -> None:
        """Queue scripted responses; each is consumed by the next matching chat request."""
        with self._lock:
            self._script.extend(responses)

    def enqueue_status(
        self,
        status: int,
        body: JSONDict,
        headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
    ) -> None:
        """Answer the next matching request with ``status`` and the JSON ``body`` as given."""
        self.enqueue(
            ScriptedResponse(status=status, body=body, headers=dict(headers or {}), model=model)
        )

    def enqueue_rate_limit(
        self,
        retry_after_seconds: float | None = 0,
        *,
        model: str | None = None,
        limit_type: str = "requests",
        message: str | None = None,
    ) -> None:
        """429 ``{"type": "requests" | "tokens", "code": "rate_limit_exceeded"}`` + retry-after.

        ``retry_after_seconds=None`` omits the ``retry-after`` header.
        """
        if message is None:
            limit = self.rate_limit_requests if limit_type == "requests" else self.rate_limit_tokens
            unit = "requests per min (RPM)" if limit_type == "requests" else "tokens per min (TPM)"
            message = (
                f"Rate limit reached for {model or 'model'} in organization org-fake on {unit}: "
                f"Limit {limit}. Please try again later."
            )
        headers = {f"x-ratelimit-remaining-{limit_type}": "0"}
        if retry_after_seconds is not None:
            headers["retry-after"] = f"{retry_after_seconds:g}"
        self.enqueue(
            ScriptedResponse(
                status=429,
                body=error_body(message, type_=limit_type, code="rate_limit_exceeded"),
                headers=headers,
                model=model,
            )
        )

    def enqueue_insufficient_quota(self, *, model: str | None = None) -> None:
        """429 ``insufficient_quota`` (billing problem: retrying does not help)."""
        self.enqueue(
            ScriptedResponse(
                status=429,
                body=error_body(
                    "You exceeded your current quota, please check your plan and billing details.",
                    type_="insufficient_quota",
                    code="insufficient_quota",
                ),
                model=model,
            )
        )

    def enqueue_server_error(
        self, status: int = 500, *, model: str | None = None, message: str | None = None
    ) -> None:
        """A 5xx answer with ``{"type": "server_error"}``."""
        self.enqueue(
            ScriptedResponse(
                status=status,
                body=error_body(message or _SERVER_ERROR_MESSAGE, type_="server_error"),
                model=model,
            )
        )

    def enqueue_timeout(
        self, delay_seconds: float, *, model: str | None = None, content: str | None = None
    ) -> None:
        """Sleep ``delay_seconds`` before answering normally (the client should time out first).

        The sleep is interrupted by :meth:`close`, so closing never waits for it.
        """
        self.enqueue(ScriptedResponse(delay_seconds=delay_seconds, content=content, model=model))

    def enqueue_content(
        self, text: str, *, model: str | None = None, finish_reason: str = "stop"
    ) -> None:
        """A normal 200 chat completion whose assistant content is exactly ``text``."""
        self.enqueue(ScriptedResponse(content=text, finish_reason=finish_reason, model=model))

    # ---- internals ------------------------------------------------------------------------

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _take_scripted(self, model: str) -> ScriptedResponse | None:
        with self._lock:
            for index, scripted in enumerate(self._script):
                if scripted.model is None or scripted.model == model:
                    return self._script.pop(index)
        return None

    def _common_headers(self) -> dict[str, str]:
        return {
            "x-request-id": f"req_{secrets.token_hex(16)}",
            "openai-version": "2020-10-01",
            "openai-organization": "org-fake",
            "openai-processing-ms": "1",
        }

    def _rate_limit_headers(self) -> dict[str, str]:
        with self._lock:
            remaining_requests = max(self.rate_limit_requests - self._requests_used, 0)
            remaining_tokens = max(self.rate_limit_tokens - self._tokens_used, 0)
        return {
            "x-ratelimit-limit-requests": str(self.rate_limit_requests),
            "x-ratelimit-limit-tokens": str(self.rate_limit_tokens),
            "x-ratelimit-remaining-requests": str(remaining_requests),
            "x-ratelimit-remaining-tokens": str(remaining_tokens),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "0s",
        }

    def _check_auth(self, handler: _Handler) -> None:
        authorization = handler.headers.get("Authorization")
        if not authorization:
            raise OpenAIErrorResponse(401, _NO_KEY_MESSAGE, code="invalid_api_key")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token != self.api_key:
            masked = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
            raise OpenAIErrorResponse(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _handle(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0].rstrip("/") or "/"
        raw = handler.read_body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None
        record = RecordedRequest(
            method=handler.command,
            path=path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            raw_body=raw,
        )
        with self._lock:
            self._requests.append(record)

        headers = self._common_headers()
        try:
            status, payload, extra = self._route(handler, record)
        except OpenAIErrorResponse as err:
            status, payload, extra = err.status, err.body, err.headers
        except Exception as exc:  # e.g. a broken test responder
            status = 500
            payload = error_body(f"{_SERVER_ERROR_MESSAGE} ({exc!r})", type_="server_error")
            extra = {}
        if self._stop.is_set():
            # Shutting down (e.g. woken from a timeout sleep): drop the connection silently.
            handler.close_connection = True
            return
        headers.update(extra)
        with self._lock:
            record.status = status
        handler.send_json(status, payload, headers)

    def _route(
        self, handler: _Handler, record: RecordedRequest
    ) -> tuple[int, object, dict[str, str]]:
        method, path = record.method, record.path
        if method == "POST" and path == CHAT_COMPLETIONS_PATH:
            self._check_auth(handler)
            if not record.raw_body or record.body is None:
                raise _bad_request(_BAD_JSON_MESSAGE, param=None, code=None)
            return self._chat_completion(validate_chat_request(record.body, self.models))
        if method == "GET" and path == MODELS_PATH:
            self._check_auth(handler)
            return 200, {"object": "list", "data": [self._model_object(m) for m in self.models]}, {}
        if method == "GET" and path.startswith(MODELS_PATH + "/"):
            self._check_auth(handler)
            model_id = path[len(MODELS_PATH) + 1 :]
            if model_id not in self.models:
                raise OpenAIErrorResponse(
                    404,
                    f"The model '{model_id}' does not exist",
                    param="model",
                    code="model_not_found",
                )
            return 200, self._model_object(model_id), {}
        raise OpenAIErrorResponse(404, f"Invalid URL ({method} {path})")

    @staticmethod
    def _model_object(model_id: str) -> JSONDict:
        return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    def _chat_completion(self, body: JSONDict) -> tuple[int, object, dict[str, str]]:
        model = cast(str, body["model"])
        scripted = self._take_scripted(model)
        content: str | None = None
        finish_reason = "stop"
        if scripted is not None:
            if scripted.delay_seconds > 0:
                self._stop.wait(scripted.delay_seconds)
            if scripted.body is not None:
                headers = self._rate_limit_headers()
                headers.update(scripted.headers)
                return scripted.status, scripted.body, headers
            content = scripted.content
            finish_reason = scripted.finish_reason
        n = body.get("n") or 1
        contents = [content if content is not None else self.responder(body) for _ in range(n)]

        prompt_text = "".join(message_text(m.get("content")) for m in _messages(body))
        prompt_tokens = estimate_tokens(prompt_text)
        completion_tokens = sum(estimate_tokens(c) for c in contents)
        with self._lock:
            self._requests_used += 1
            self._tokens_used += prompt_tokens + completion_tokens
        completion = {
            "id": f"chatcmpl-{secrets.token_hex(14)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": index,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
                for index, text in enumerate(contents)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        return 200, completion, self._rate_limit_headers()
