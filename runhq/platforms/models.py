"""Platforms, their health-check results and incidents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runhq import clock
from runhq.db.base import Base, CreatedAtMixin, IdMixin


class Platform(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "platforms"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    health_urls: Mapped[list[str]] = mapped_column(default=list)
    expected_status: Mapped[int] = mapped_column(default=200)
    expected_body: Mapped[str | None] = mapped_column(String(500), default=None)
    check_interval_seconds: Mapped[int] = mapped_column(default=60)
    check_timeout_seconds: Mapped[float] = mapped_column(default=5.0)
    failure_threshold: Mapped[int] = mapped_column(default=3)
    repository: Mapped[str | None] = mapped_column(String(200), default=None)
    environment: Mapped[str] = mapped_column(String(50), default="production")
    deploy_target: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_contact: Mapped[str | None] = mapped_column(String(320), default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class HealthCheck(IdMixin, Base):
    __tablename__ = "health_checks"
    __table_args__ = (Index("ix_health_checks_platform_checked", "platform_id", "checked_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    platform_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    ok: Mapped[bool]
    status_code: Mapped[int | None] = mapped_column(default=None)
    latency_ms: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    checked_at: Mapped[datetime]


class Incident(IdMixin, Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_platform_opened", "platform_id", "opened_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    platform_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    failures: Mapped[int]
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
