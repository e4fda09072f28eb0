"""Signed deploy webhooks: one POST, signed with HMAC-SHA256, never retried here.

The request carries the JSON body (serialised once: compact, sorted keys) and four headers::

    Content-Type: application/json
    X-Runhq-Timestamp: <unix seconds>
    X-Runhq-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed by the secret>
    Idempotency-Key: <key>

A receiver checks it with :func:`verify`: recompute the HMAC over the exact bytes received,
compare in constant time, and refuse timestamps older (or newer) than a tolerance, so that a
captured request cannot be replayed later. It should also remember ``Idempotency-Key`` values
for a while and answer a repeated key without deploying again.

**No automatic retries.** :func:`deploy_webhook` sends exactly once. When the receiver did not
answer (timeout, connection reset after sending), nobody can know whether the deploy started; a
retry loop here would risk deploying twice behind the back of the approver. The caller decides,
with ``ActionFailed.retryable`` as a hint, and resends with the *same* idempotency key.

Deploy-hook URLs are often credentials themselves (a token in the path or query), so reasons and
details name only the URL's host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any

import httpx

from runhq.actions.connectors.base import ActionFailed, ActionResult, clip, redact

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "deploy_webhook",
    "serialize",
    "sign",
    "verify",
]

TIMESTAMP_HEADER = "X-Runhq-Timestamp"
SIGNATURE_HEADER = "X-Runhq-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_SIGNATURE_SCHEME = "sha256"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
#: 4xx answers that mean "not now" rather than "never": Request Timeout, Too Early, Too Many.
_RETRYABLE_4XX = frozenset({408, 425, 429})


def serialize(payload: dict[str, Any]) -> bytes:
    """The body bytes: compact JSON with sorted keys (the exact bytes that are signed)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256, keyed by ``secret``, of ``f"{timestamp}."`` followed by ``body``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature_header: str,
    *,
    now: datetime,
    tolerance_seconds: int = 300,
) -> bool:
    """True when ``signature_header`` (``sha256=<hex>``) signs ``body`` at ``timestamp`` with
    ``secret`` and the timestamp is within ``tolerance_seconds`` of ``now`` (either way).

    The comparison is constant-time. A malformed header or timestamp is simply invalid.
    """
    if now.tzinfo is None:
        raise ValueError("verify() needs a timezone-aware 'now'")
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs(now.timestamp() - int(timestamp)) > tolerance_seconds:
        return False
    scheme, separator, received = signature_header.strip().partition("=")
    if separator != "=" or scheme.strip().lower() != _SIGNATURE_SCHEME:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), received.strip().lower().encode())


def deploy_webhook(
    client: httpx.Client,
    *,
    url: str,
    secret: str,
    payload: dict[str, Any],
    idempotency_key: str,
    now: datetime,
) -> ActionResult:
    """POST the signed ``payload`` to ``url`` once; 2xx is success.

    Failures raise :class:`ActionFailed`: 4xx is not retryable (except 408, 425 and 429), 5xx,
    timeouts and connection errors are. A timeout or a connection lost after sending means the
    deploy *may* have been received: the reason says so, and a resend must reuse
    ``idempotency_key``. Redirects are not followed (a signed POST is not replayed elsewhere).
    """
    if now.tzinfo is None:
        raise ValueError("deploy_webhook() needs a timezone-aware 'now'")
    if not secret:
        raise ValueError("a webhook secret is required")
    if not idempotency_key.strip():
        raise ValueError("an idempotency key is required")
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError("the deploy webhook URL is not a valid URL") from None
    if target.scheme not in {"http", "https"} or not target.host:
        raise ValueError("the deploy webhook URL must be an absolute http(s) URL")
    host = target.host
    body = serialize(payload)
    timestamp = str(int(now.timestamp()))
    signature = sign(secret, timestamp, body)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{_SIGNATURE_SCHEME}={signature}",
        IDEMPOTENCY_HEADER: idempotency_key,
    }
    # The URL may be a credential: scrub it whole, its path, its query and each query value.
    secrets = [
        secret,
        url,
        target.path if len(target.path) > 1 else None,
        target.query.decode(),
        *(value for _, value in target.params.multi_items()),
    ]
    where = f"the deploy webhook at {host}"
    try:
        response = client.post(url, content=body, headers=headers, follow_redirects=False)
    except httpx.ConnectError as exc:
        detail = redact(clip(str(exc) or type(exc).__name__), secrets)
        raise ActionFailed(
            f"could not connect to {where} ({detail}); nothing was sent", retryable=True
        ) from None
    except httpx.TimeoutException:
        raise ActionFailed(
            f"{where} did not answer in time; the deploy may or may not have been received "
            f"(resend only with the same idempotency key)",
            retryable=True,
        ) from None
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        detail = redact(clip(str(exc) or type(exc).__name__), secrets)
        raise ActionFailed(
            f"the connection to {where} failed ({detail}); the deploy may or may not have been "
            f"received (resend only with the same idempotency key)",
            retryable=True,
        ) from None
    except httpx.HTTPError as exc:
        detail = redact(clip(str(exc) or type(exc).__name__), secrets)
        raise ActionFailed(f"request to {where} failed: {detail}", retryable=False) from None

    status = response.status_code
    excerpt = redact(clip(response.text), secrets) if response.content else ""
    if response.is_success:
        return ActionResult(
            ok=True,
            summary=f"deploy webhook accepted by {host} ({status})",
            details={
                "host": host,
                "status_code": status,
                "idempotency_key": idempotency_key,
                "timestamp": int(timestamp),
                "response_excerpt": excerpt,
            },
        )
    answered = f"{where} answered {status} {response.reason_phrase}".rstrip()
    if excerpt:
        answered += f": {excerpt}"
    if 300 <= status < 400:
        raise ActionFailed(
            f"{answered} (redirects are not followed; configure the final URL)",
            retryable=False,
            status_code=status,
        )
    retryable = status >= 500 or status in _RETRYABLE_4XX
    raise ActionFailed(answered, retryable=retryable, status_code=status)
