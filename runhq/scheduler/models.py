"""Schedules, the scheduler's leader lease and each workspace's autopilot settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runhq import clock
from runhq.db.base import Base, CreatedAtMixin, IdMixin


class Schedule(IdMixin, CreatedAtMixin, Base):
    """A job: a run type (with platform and params) fired on a cron in a time zone."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("workspace_id", "job_key"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    job_key: Mapped[str] = mapped_column(String(100))
    run_type: Mapped[str] = mapped_column(String(64))
    platform_key: Mapped[str | None] = mapped_column(String(100), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    # The last firing instant handled (fired, or skipped with a reason): firings are
    # computed after it, so a firing is considered once.
    last_fired_at: Mapped[datetime | None] = mapped_column(default=None)
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None
    )
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class SchedulerLease(Base):
    """Who leads the schedulers: one row per lease name, taken by compare-and-set."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    # Fencing token: incremented at every change of holder.
    token: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


class AutopilotSettings(IdMixin, Base):
    __tablename__ = "autopilot_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), unique=True
    )
    enabled: Mapped[bool] = mapped_column(default=False)
    interval_minutes: Mapped[int] = mapped_column(default=5)
    last_cycle_at: Mapped[datetime | None] = mapped_column(default=None)
    next_cycle_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
