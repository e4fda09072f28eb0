"""The executor interface every implementation (local threads, Celery) provides."""

from __future__ import annotations

import uuid
from typing import Protocol


class Executor(Protocol):
    def start(self) -> None:
        """Begin executing queued runs."""

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking runs; wait up to ``timeout`` for those in flight."""

    def notify(self, run_id: uuid.UUID) -> None:
        """A run became queued (called after commit). Must not block."""
