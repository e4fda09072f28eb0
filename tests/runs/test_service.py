"""``runs.service`` checks that need no HTTP round trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from runhq import clock
from runhq.costs import service as costs
from runhq.errors import InvalidInput
from runhq.runs import service as runs
from runhq.runs.models import Run
from runhq.runtime import Runtime
from tests.conftest import Team, sqlite_plan


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


@pytest.mark.parametrize("query", ["_PENDING_APPROVAL", "_FAILED", "_FAILED_COUNTS"])
def test_status_listings_read_only_their_rows(session: Any, query: str) -> None:
    """Pending approval and failures read (workspace, status, created_at): only the rows of
    that status, in order — not every run of the workspace (ix_runs_workspace_created)."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("plans are checked on SQLite; PostgreSQL's depend on its statistics")
    plan = sqlite_plan(session, getattr(runs, query))
    assert "ix_runs_workspace_status_created" in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan


@pytest.mark.parametrize(
    "statement",
    [
        runs._RECENT_STATS,
        runs._LATEST_COMPLETED_IDS,
        runs._FAILED_COUNTS,
        costs._LINES,
        costs._SPEND,
        costs._SPEND_OF_AGENT,
        costs._SPEND_BY_AGENT,
    ],
    ids=[
        "recent stats",
        "latest completed",
        "failed counts",
        "cost lines",
        "spend",
        "spend of agent",
        "spend by agent",
    ],
)
def test_history_scans_read_the_covering_index_only(session: Any, statement: Any) -> None:
    """What every run's context and cost page reads over a window of history is read from
    ix_runs_workspace_status_created alone, each status's rows of the window: never a run's
    ~4 KB row (ADR 0021)."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("plans are checked on SQLite; PostgreSQL's depend on its statistics")
    plan = sqlite_plan(session, statement)
    assert "USING COVERING INDEX ix_runs_workspace_status_created" in plan, plan
    assert "created_at>?" in plan, plan  # the window, not the whole history
    assert "SCAN runs" not in plan, plan


def test_the_latest_completed_read_only_the_chosen_rows(session: Any) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("plans are checked on SQLite; PostgreSQL's depend on its statistics")
    plan = sqlite_plan(session, runs._LATEST_COMPLETED)
    # The chosen ids from the covering index, then each row by its primary key.
    assert plan.startswith("SEARCH runs USING INDEX sqlite_autoindex_runs_1 (id=?)"), plan
    assert "LIST SUBQUERY" in plan, plan
    assert "USING COVERING INDEX ix_runs_workspace_status_created" in plan, plan


def _history_run(session: Any, team: Team, status: str, **values: Any) -> Run:
    run = Run(
        workspace_id=team.workspace_id,
        run_type=values.pop("run_type", "SEO_AUDIT"),
        agent="CMO",
        status=status,
        model_requested="offline",
        **values,
    )
    session.add(run)
    session.flush()
    return run


def test_recent_stats_of_one_platform_and_the_latest_completed_by_finish(
    session: Any, team: Team
) -> None:
    now = clock.now()
    day = timedelta(days=1)
    old = _history_run(
        session, team, "completed", created_at=now - 30 * day, finished_at=now - 29 * day
    )
    early = _history_run(
        session,
        team,
        "completed",
        created_at=now - 3 * day,
        finished_at=now - day,
        platform_key="shop",
    )
    late = _history_run(
        session, team, "completed", created_at=now - 2 * day, finished_at=now - 2 * day
    )
    failed = _history_run(session, team, "failed", created_at=now - day, platform_key="shop")
    current = _history_run(session, team, "running", created_at=now, platform_key="shop")
    ws = team.workspace_id

    stats = runs.get_recent_run_stats(session, ws, since=now - 7 * day, exclude_run_id=current.id)
    assert sum(line["total"] for line in stats) == 3  # not the old one, not the excluded one
    shop = runs.get_recent_run_stats(
        session, ws, since=now - 7 * day, platform_key="shop", exclude_run_id=current.id
    )
    assert shop == [
        {
            "run_type": "SEO_AUDIT",
            "platform_key": "shop",
            "total": 2,
            "by_status": {"completed": 1, "failed": 1},
        }
    ]

    # Newest finish first, though it was created first; the window is on creation.
    latest = runs.list_latest_completed(session, ws, since=now - 7 * day)
    assert [row.id for row in latest] == [early.id, late.id]
    assert [
        row.id for row in runs.list_latest_completed(session, ws, since=now - 7 * day, limit=1)
    ] == [early.id]
    excluded = runs.list_latest_completed(session, ws, since=now - 7 * day, exclude_run_id=early.id)
    assert [row.id for row in excluded] == [late.id]
    wider = runs.list_latest_completed(session, ws, since=now - 60 * day)
    assert [row.id for row in wider] == [early.id, late.id, old.id]
    assert failed.id not in {row.id for row in latest}
