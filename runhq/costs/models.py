"""Monthly AI budgets: one global per workspace and optional ones per agent."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
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
