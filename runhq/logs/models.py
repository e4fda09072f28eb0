"""The structured log table of seed 001 (``structured_logs``), with its two indexes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from runhq.db.base import Base, CreatedAtMixin, IdMixin


class StructuredLog(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "structured_logs"
    __table_args__ = (
        Index("idx_structured_logs_level_created", "level", "created_at"),
        Index("idx_structured_logs_source_created", "source", "created_at"),
        Index("ix_structured_logs_workspace_created", "workspace_id", "created_at"),
    )

    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), default=None
    )
    level: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    # "metadata" is reserved on declarative classes: the attribute is meta, the column metadata.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None, index=True
    )
