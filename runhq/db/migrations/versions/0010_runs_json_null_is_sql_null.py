"""runs: a JSON document 'null' becomes SQL NULL

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 11:00:00.000000

Until now Python's None was written as the JSON document 'null' by Core and by
``runhq.db.compiled`` (SQLAlchemy's JSON default), so a run created by the service carried
'null' in its price, prompt, context, output, plan and action_result until they were set,
while ``output IS NULL`` found nothing. The JSON type now writes None as SQL NULL; the rows
written before are brought in line.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("price", "prompt", "context", "output", "plan", "action_result")


def upgrade() -> None:
    json_null = "'null'::jsonb" if op.get_bind().dialect.name == "postgresql" else "'null'"
    for column in COLUMNS:  # the model's own column names, never input
        op.execute(
            sa.text(f'UPDATE runs SET "{column}" = NULL WHERE "{column}" = {json_null}')  # noqa: S608
        )


def downgrade() -> None:
    """Nothing to undo: SQL NULL reads as None either way."""
