"""Monthly AI budgets: one global per workspace and optional ones per agent."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runhq import clock
from runhq.db.base import Base, CreatedAtMixin, IdMixin

GLOBAL_SCOPE = "global"


class Budget(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("workspace_id", "scope"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # "global" or an agent key (CEO, CTO, ...).
    scope: Mapped[str] = mapped_column(String(20))
    monthly_limit_eur: Mapped[float]
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class ModelUsage(IdMixin, CreatedAtMixin, Base):
    """A model call that is not a run (the autopilot's decisions): what it cost, so that the
    reports and the budgets count every euro spent on models."""

    __tablename__ = "model_usage"
    __table_args__ = (Index("ix_model_usage_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # Who called: "autopilot".
    source: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    cost_eur: Mapped[float] = mapped_column(default=0.0)
