"""The run state machine's writes: a change and its log line, together or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.errors import DuplicateRun
from runhq.logs.models import StructuredLog
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runs.state import StaleTransition, transition
from runhq.runtime import Runtime
from tests.conftest import counted_statements, make_runtime, make_settings, make_team
from tests.runs.test_engine import _messages


def test_a_lost_compare_and_set_writes_neither_the_change_nor_its_log_line(
    session: Session, runtime: Runtime
) -> None:
    team = make_team(session)
    run, _ = runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")
    before = _messages(session, run)
    # Another process cancels the run behind this copy's back.
    session.execute(
        update(Run).where(Run.id == run.id).values(status=RunStatus.cancelled.value),
        execution_options={"synchronize_session": False},
    )
    with pytest.raises(StaleTransition):
        transition(session, run, RunStatus.running)
    assert _messages(session, run) == before == ["run.created"]
    assert session.scalar(select(Run.status).where(Run.id == run.id)) == "cancelled"


def test_a_refused_creation_writes_no_log_line(session: Session, runtime: Runtime) -> None:
    team = make_team(session)
    runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")
    count = select(func.count()).select_from(StructuredLog)
    lines = session.scalar(count)
    with pytest.raises(DuplicateRun):
        runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")
    assert session.scalar(count) == lines


def test_each_step_of_a_run_writes_its_change_and_log_line_in_one_statement_on_postgresql(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """PostgreSQL: the run and run.created, the claim and run.started, the outcome and
    run.completed are each one statement (ADR 0014), and the engine's steps run in
    autocommit. SQLite: two statements in a transaction. Same log lines either way."""
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    try:
        sessions = make_session_factory(engine)
        runtime = make_runtime(make_settings(tmp_path, fresh_database_url), sessions, engine)
        with transaction(sessions) as session:
            team = make_team(session)
        with counted_statements(engine) as created, transaction(sessions) as session:
            run, _ = runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")
        with counted_statements(engine) as executed:
            assert runtime.engine.execute(run.id) == RunStatus.completed
        writes = [
            s
            for s in created + executed
            if s.lstrip().upper().startswith(("INSERT", "WITH", "UPDATE"))
        ]
        if engine.dialect.name == "postgresql":
            assert len(writes) == 3
            assert all("INSERT INTO structured_logs" in s for s in writes)
            assert not any(s.startswith("BEGIN") for s in executed)
        else:
            assert len(writes) == 6
            assert sum("INSERT INTO structured_logs" in s for s in writes) == 3
        with sessions() as session:
            assert _messages(session, run) == ["run.created", "run.started", "run.completed"]
            assert session.scalar(text("SELECT count(*) FROM runs")) == 1
    finally:
        engine.dispose()
