"""API shapes of structured logs."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LogLevel(StrEnum):
    info = "info"
    warn = "warn"
    error = "error"


class LogSource(StrEnum):
    """Who wrote a log line (seed 001: executive-run, autopilot, system)."""

    executive_run = "executive-run"
    autopilot = "autopilot"
    system = "system"
    health = "health"


class LogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    level: str
    source: str
    message: str
    metadata: dict[str, Any] = Field(validation_alias="meta")
    run_id: uuid.UUID | None
    created_at: datetime


class LogPage(BaseModel):
    items: list[LogOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= to get the next (older) page; null on the last page."
    )


class PurgeResult(BaseModel):
    deleted: int
    older_than: datetime
