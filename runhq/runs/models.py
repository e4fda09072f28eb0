"""Runs and their approval decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runhq import clock
from runhq.db.base import Base, CreatedAtMixin, IdMixin


class RunStatus(StrEnum):
    pending_approval = "pending_approval"
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    rejected = "rejected"


ACTIVE_STATUSES = frozenset({RunStatus.pending_approval, RunStatus.queued, RunStatus.running})
TERMINAL_STATUSES = frozenset(
    {RunStatus.completed, RunStatus.failed, RunStatus.cancelled, RunStatus.rejected}
)


# ix_runs_workspace_status_created: its key, then what the history scans read (ADR 0021).
STATUS_INDEX_COLUMNS = (
    "workspace_id",
    "status",
    "created_at",
    "run_type",
    "platform_key",
    "agent",
    "finished_at",
    "estimated_cost",
    "actual_cost",
    "id",
)


class Run(IdMixin, CreatedAtMixin, Base):
    """A run. On SQLite the table's physical column order is migration 0009's: the columns
    scans read first, the large documents (prompt, context, output, plan, action_result)
    last, so that reading a small column never walks a row's overflow pages. A column added
    later is appended after them: give it its place in a rebuild if scans read it."""

    __tablename__ = "runs"
    __table_args__ = (
        # Anti-double-run at the database: one active run per (workspace, type, platform).
        # active_key is NULL once the run is terminal, and NULLs never collide.
        UniqueConstraint("workspace_id", "active_key"),
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_runs_workspace_created", "workspace_id", "created_at"),
        # Pending approval oldest first, failed since … newest first: only their rows, in
        # order. The trailing columns make it covering for the scans every run's context and
        # every cost page make over a window of history (counts by type and status, the
        # month's costs, the latest completed): read in the index, never the 4 KB rows
        # (ADR 0021). A run changes this entry anyway when its status changes.
        Index("ix_runs_workspace_status_created", *STATUS_INDEX_COLUMNS),
        Index("ix_runs_workspace_type_created", "workspace_id", "run_type", "created_at"),
        # The dispatcher (queued, not yet accepted by the broker) and the reaper (running).
        Index("ix_runs_status_updated", "status", "updated_at"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    run_type: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(8))
    platform_key: Mapped[str | None] = mapped_column(String(100), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20))
    active_key: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    requested_via: Mapped[str] = mapped_column(String(20), default="api")
    attempt: Mapped[int] = mapped_column(default=1)
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None, index=True
    )
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    model_requested: Mapped[str] = mapped_column(String(100))
    model_used: Mapped[str | None] = mapped_column(String(100), default=None)
    price: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    prompt: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    context: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    output: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    executive_summary: Mapped[str | None] = mapped_column(Text, default=None)
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    estimated_cost: Mapped[float] = mapped_column(default=0.0)
    actual_cost: Mapped[float | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Two-phase action runs: "single" (report only), else "plan" (to be planned),
    # "review" (plan awaiting approval), "act" (approved plan to carry out).
    phase: Mapped[str] = mapped_column(String(10), default="single", server_default="single")
    plan: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    plan_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    action_started_at: Mapped[datetime | None] = mapped_column(default=None)
    action_result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # Set by the worker that claimed the run; its heartbeats and result must carry it.
    claim_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    # Outbox: when the broker accepted the task for this run (NULL: to be (re)sent).
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    dispatch_attempts: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class RunApproval(IdMixin, CreatedAtMixin, Base):
    """An owner's decision on a gated run, with the reason given."""

    __tablename__ = "run_approvals"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # The plan this decision is about; an edited plan needs a new approval.
    plan_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
