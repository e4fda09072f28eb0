"""runs: the status index covers the history scans

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 13:00:00.000000

``ix_runs_workspace_status_created`` gains the columns that every run's context and every
cost page read over a window of history (ADR 0021): counts by type, platform and status,
the month's costs by type and agent, the latest completed runs. Those scans then read the
index alone instead of one ~4 KB row per run.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ["workspace_id", "status", "created_at"]
COVERED = ["run_type", "platform_key", "agent", "finished_at", "estimated_cost", "actual_cost"]


def upgrade() -> None:
    op.drop_index("ix_runs_workspace_status_created", table_name="runs")
    op.create_index("ix_runs_workspace_status_created", "runs", [*KEY, *COVERED, "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_workspace_status_created", table_name="runs")
    op.create_index("ix_runs_workspace_status_created", "runs", KEY)
