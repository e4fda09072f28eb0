"""runs: the large documents last on SQLite; (workspace, status, created_at) index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:30:00.000000

SQLite stores a row's columns in table order, and a row longer than a page continues on
overflow pages: reading a column placed after the prompt, the facts or the output means
walking that chain. The scans behind a run's facts, the costs and the listings read small
columns (status, dates, costs, type) of many rows; they came after the large documents, so
every row scanned cost its overflow pages too. The table is rebuilt on SQLite with the small
columns first, those the scans read at the front, and the large documents last. PostgreSQL
keeps large values out of line (TOAST) and is left as it is.

The (workspace_id, status) index becomes (workspace_id, status, created_at): "pending
approval, oldest first" and "failed since …, newest first" read only their rows in order,
instead of every run of the workspace (SQLite chose the (workspace_id, created_at) index to
avoid a sort).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Scanned columns first, identifiers and bookkeeping next, the large documents last.
ORDER = (
    "id",
    "workspace_id",
    "created_at",
    "status",
    "run_type",
    "platform_key",
    "agent",
    "phase",
    "finished_at",
    "started_at",
    "updated_at",
    "estimated_cost",
    "actual_cost",
    "tokens_in",
    "tokens_out",
    "duration_ms",
    "attempt",
    "cancel_requested",
    "requested_via",
    "model_requested",
    "model_used",
    "requested_by",
    "parent_run_id",
    "active_key",
    "idempotency_key",
    "claim_token",
    "heartbeat_at",
    "dispatched_at",
    "dispatch_attempts",
    "action_started_at",
    "plan_hash",
    "params",
    "price",
    "executive_summary",
    "error",
    "prompt",
    "context",
    "output",
    "plan",
    "action_result",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # On SQLite a rebuild (runhq.db.migrate.upgrade turns foreign keys off meanwhile: the
    # old table is dropped); elsewhere the two index statements only.
    rebuild = {"recreate": "always", "partial_reordering": [ORDER]} if sqlite else {}
    with op.batch_alter_table("runs", **rebuild) as batch_op:  # type: ignore[arg-type]
        batch_op.drop_index("ix_runs_workspace_status")
        batch_op.create_index(
            "ix_runs_workspace_status_created", ["workspace_id", "status", "created_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_index("ix_runs_workspace_status_created")
        batch_op.create_index("ix_runs_workspace_status", ["workspace_id", "status"])
