"""The clock: every 'now' in runhq comes from here, so tests can control time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """Current time, timezone-aware (UTC)."""
    return _now()


class FrozenClock:
    """A controllable clock for tests: ``with FrozenClock(t) as clock: clock.advance(...)``."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self.current = start
        self._previous: Callable[[], datetime] | None = None

    def advance(self, delta: timedelta) -> datetime:
        self.current = self.current + delta
        return self.current

    def __enter__(self) -> FrozenClock:
        global _now
        self._previous = _now
        _now = lambda: self.current  # noqa: E731
        return self

    def __exit__(self, *exc: object) -> None:
        global _now
        if self._previous is not None:
            _now = self._previous
