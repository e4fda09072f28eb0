"""Shared HTTP plumbing of the external connectors: retries, backoff and clean failures.

:func:`get_json` performs one GET that is retried with exponential backoff (tenacity) on the
transient failures — HTTP 429, HTTP 5xx, timeouts and connection errors — honouring a
``Retry-After`` header (capped). Every other failure, and the last transient one, becomes a
:class:`ConnectorUnavailable` whose ``reason`` says what happened in words a human can act on,
with the platform's own error message when its body carries one, and never a credential.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from runhq import clock

__all__ = [
    "DEFAULT_BACKOFF",
    "Backoff",
    "ConnectorUnavailable",
    "JsonResponse",
    "QueryParams",
    "get_json",
    "get_json_response",
]

QueryParams = Mapping[str, str | int]

#: Header names whose values are credentials: they are scrubbed from every reason.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-subscription-token", "x-api-key", "api-key"}
)
_MAX_MESSAGE_CHARS = 300
_REDACTED = "[redacted]"


class ConnectorUnavailable(Exception):
    """An external source could not provide facts; ``reason`` says why (no secrets in it)."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason: str = reason
        #: HTTP status of the final answer, when the platform answered at all.
        self.status_code: int | None = status_code


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: ``base * 2**(n-1)`` seconds capped at ``maximum``.

    A ``Retry-After`` header (or Brave's ``X-RateLimit-Reset``) replaces the computed wait, but
    never beyond ``retry_after_cap`` seconds.
    """

    base: float = 0.2
    maximum: float = 2.0
    retry_after_cap: float = 5.0


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A decoded JSON body together with the response headers (for ``Link`` pagination)."""

    data: Any
    headers: httpx.Headers


class _TransientStatus(Exception):
    """Internal: a 429/5xx answer that deserves another attempt."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


_RETRIED_ERRORS: tuple[type[BaseException], ...] = (
    _TransientStatus,
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


def get_json(
    client: httpx.Client,
    url: str,
    *,
    headers: dict[str, str],
    params: QueryParams | None = None,
    attempts: int = 3,
    backoff: Backoff = DEFAULT_BACKOFF,
    platform: str | None = None,
    follow_redirects: bool = False,
) -> Any:
    """GET ``url`` and return its decoded JSON body, or raise :class:`ConnectorUnavailable`.

    ``platform`` names the service in reasons ("Stripe answered 401: …"); it defaults to the
    URL's host. ``attempts`` counts the first try. 401/403/404 and other 4xx are not retried.
    """
    return get_json_response(
        client,
        url,
        headers=headers,
        params=params,
        attempts=attempts,
        backoff=backoff,
        platform=platform,
        follow_redirects=follow_redirects,
    ).data


def get_json_response(
    client: httpx.Client,
    url: str,
    *,
    headers: dict[str, str],
    params: QueryParams | None = None,
    attempts: int = 3,
    backoff: Backoff = DEFAULT_BACKOFF,
    platform: str | None = None,
    follow_redirects: bool = False,
) -> JsonResponse:
    """Like :func:`get_json`, but also return the response headers."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    name = platform or _host_of(url)
    secrets = _secrets_in(headers)

    def attempt_once() -> httpx.Response:
        response = client.get(
            url, headers=headers, params=params, follow_redirects=follow_redirects
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise _TransientStatus(response)
        return response

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=_Wait(backoff),
        retry=retry_if_exception_type(_RETRIED_ERRORS),
        reraise=True,
    )
    tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
    try:
        response = retrying(attempt_once)
    except _TransientStatus as exc:
        reason = f"{_describe_status(name, exc.response)} ({tries})"
        raise ConnectorUnavailable(
            _redact(reason, secrets), status_code=exc.response.status_code
        ) from None
    except httpx.TimeoutException:
        raise ConnectorUnavailable(f"{name} did not answer in time ({tries})") from None
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        detail = _redact(str(exc) or type(exc).__name__, secrets)
        raise ConnectorUnavailable(f"could not reach {name}: {detail} ({tries})") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        detail = _redact(str(exc) or type(exc).__name__, secrets)
        raise ConnectorUnavailable(f"request to {name} failed: {detail}") from None

    if not response.is_success:
        raise ConnectorUnavailable(
            _redact(_describe_status(name, response), secrets),
            status_code=response.status_code,
        )
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConnectorUnavailable(
            f"{name} answered {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
        ) from None
    return JsonResponse(data=data, headers=response.headers)


class _Wait:
    """Tenacity wait strategy: exponential backoff, or the server's ``Retry-After`` (capped)."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._exponential = wait_exponential(multiplier=backoff.base, max=backoff.maximum)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _TransientStatus):
            hinted = _retry_after_seconds(exc.response.headers)
            if hinted is not None:
                return max(0.0, min(hinted, self._backoff.retry_after_cap))
        return float(self._exponential(retry_state))


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After`` (seconds or HTTP date), else the first
    value of ``X-RateLimit-Reset`` (Brave: "1, 1419704" = 1 s for the per-second window)."""
    value = headers.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - clock.now()).total_seconds()
        return seconds if math.isfinite(seconds) else None
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            seconds = float(reset.split(",")[0].strip())
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) else None
    return None


def _describe_status(platform: str, response: httpx.Response) -> str:
    message = _platform_message(response)
    if message:
        return f"{platform} answered {response.status_code}: {message}"
    phrase = response.reason_phrase or "error"
    return f"{platform} answered {response.status_code} {phrase}"


def _platform_message(response: httpx.Response) -> str | None:
    """The human message a platform put in its error body, if any.

    Knows Stripe (``{"error": {"message"}}``), Brave (``{"error": {"detail", "code"}}``) and
    GitHub (``{"message"}``); falls back to a short plain-text body.
    """
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        content_type = response.headers.get("content-type", "")
        text = response.text.strip() if content_type.startswith("text/plain") else ""
        return _clip(text) if text else None
    message: str | None = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = _first_text(error.get(key) for key in ("message", "detail", "code"))
        elif isinstance(error, str):
            message = error
        if message is None:
            message = _first_text(body.get(key) for key in ("message", "detail"))
    return _clip(message) if message else None


def _first_text(values: Iterable[object]) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        return text[: _MAX_MESSAGE_CHARS - 1] + "…"
    return text


def _secrets_in(headers: Mapping[str, str]) -> list[str]:
    secrets: set[str] = set()
    for name, value in headers.items():
        if name.lower() not in _SECRET_HEADERS:
            continue
        for candidate in (value, value.split(" ", 1)[-1]):
            candidate = candidate.strip()
            if len(candidate) >= 4:
                secrets.add(candidate)
    # Longest first, so that "Bearer sk_x" is scrubbed before "sk_x".
    return sorted(secrets, key=len, reverse=True)


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text


def _host_of(url: str) -> str:
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return "the remote service"
    return host or "the remote service"
