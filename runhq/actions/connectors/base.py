"""What every action connector answers: an :class:`ActionResult` or an :class:`ActionFailed`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ActionFailed", "ActionResult", "clip", "redact"]

_MAX_EXCERPT_CHARS = 200
_REDACTED = "[redacted]"


@dataclass
class ActionResult:
    """A side effect that happened: ``summary`` for people, ``details`` for the run's record."""

    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


class ActionFailed(Exception):
    """An action did not (or may not have) happened.

    ``reason`` is safe to show and store: it never carries a secret (token, key, password,
    signature secret). ``retryable`` is true when the same request may succeed later (timeouts,
    connection errors, 429/5xx, temporary SMTP replies); false when it cannot succeed without a
    change (bad credentials, unknown workflow, invalid parameters, permanent SMTP rejection).
    """

    def __init__(self, reason: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason: str = reason
        self.retryable: bool = retryable
        #: HTTP status or SMTP reply code of the final answer, when there was one.
        self.status_code: int | None = status_code

    def __repr__(self) -> str:
        return (
            f"ActionFailed(reason={self.reason!r}, retryable={self.retryable!r}, "
            f"status_code={self.status_code!r})"
        )


def clip(text: str, limit: int = _MAX_EXCERPT_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters (an excerpt for a reason)."""
    text = " ".join(text.split())
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (of 4 characters or more) replaced."""
    present = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    for secret in present:
        text = text.replace(secret, _REDACTED)
    return text
