"""A fact gathered for a run: what a source said, or why it could not say anything."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from runhq.config import Settings


@dataclass(frozen=True)
class ContextRequest:
    session: Session
    settings: Settings
    workspace_id: uuid.UUID
    run_id: uuid.UUID
    run_type: str
    platform_key: str | None
    params: dict[str, Any]
    topic: str
    now: datetime


@dataclass
class Fact:
    source: str
    title: str
    status: Literal["ok", "unavailable"]
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "data": self.data,
        }
        if self.reason:
            out["reason"] = self.reason
        return out
