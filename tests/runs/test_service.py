"""``runs.service`` checks that need no HTTP round trip."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runhq.errors import InvalidInput
from runhq.runs import service as runs
from runhq.runtime import Runtime


def test_each_run_type_has_one_parameter_validator(runtime: Runtime) -> None:
    # Regression: the validator cache was keyed by a schema rebuilt on every call, so it
    # built a validator per run created and kept every one of them (a leak in a server).
    registry = runtime.registry
    runs.check_params(registry, "REVENUE_FORECAST", {"horizon_months": 6})
    runs.check_params(registry, "DAILY_EXECUTIVE_BRIEF", {})
    cached = len(runs._VALIDATORS)
    for _ in range(20):
        runs.check_params(registry, "REVENUE_FORECAST", {"horizon_months": 6})
        runs.check_params(registry, "DAILY_EXECUTIVE_BRIEF", {})
        with pytest.raises(InvalidInput):
            runs.check_params(registry, "REVENUE_FORECAST", {"horizon_months": "six"})
    assert len(runs._VALIDATORS) == cached


def test_a_copy_of_a_run_type_with_other_parameters_is_checked_against_them(
    runtime: Runtime,
) -> None:
    registry = runtime.registry
    spec = registry.run_types["REVENUE_FORECAST"]
    bare = spec.model_copy(update={"params": {}})
    copy = replace(registry, run_types={**registry.run_types, "REVENUE_FORECAST": bare})
    runs.check_params(registry, "REVENUE_FORECAST", {"horizon_months": 6})
    with pytest.raises(InvalidInput, match="unknown parameter"):
        runs.check_params(copy, "REVENUE_FORECAST", {"horizon_months": 6})


def _plan(session: Any, statement: Any) -> str:
    """SQLite's query plan for ``statement``, with placeholder values."""
    conn = session.connection()
    compiled = statement.compile(dialect=conn.dialect)
    values = tuple(10 if name == "limit" else "x" for name in compiled.positiontup)
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values).all()
    return " | ".join(str(row[3]) for row in rows)


@pytest.mark.parametrize("query", ["_PENDING_APPROVAL", "_FAILED", "_FAILED_COUNTS"])
def test_status_listings_read_only_their_rows(session: Any, query: str) -> None:
    """Pending approval and failures read (workspace, status, created_at): only the rows of
    that status, in order — not every run of the workspace (ix_runs_workspace_created)."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("plans are checked on SQLite; PostgreSQL's depend on its statistics")
    plan = _plan(session, getattr(runs, query))
    assert "ix_runs_workspace_status_created" in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
