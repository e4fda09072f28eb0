"""The logs service builds every log line one way, whether inserted alone or after a change."""

from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.dialects import postgresql

from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel


def test_a_log_line_attached_to_a_change_binds_every_column_of_a_built_row() -> None:
    row = logs.build_log_row(message="run.started", level=LogLevel.warn)
    stmt = logs.insert_log_after(select(literal(1).label("id")).cte("change"))
    compiled = stmt.compile(dialect=postgresql.dialect())
    assert set(compiled.params) - {"param_1"} == set(logs.log_params(row))  # param_1: the CTE's
    assert row["level"] == "warn"
    assert row["metadata"] == {}
    assert row["created_at"].tzinfo is not None
