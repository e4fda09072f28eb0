"""Migration 0009 rebuilds ``runs`` on SQLite (large documents last): every row and every
reference to a run survives, foreign keys are enforced again afterwards, and a migration that
would leave a broken reference is rolled back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.db.migrate import upgrade
from runhq.db.models import Base, Run, RunApproval, Schedule, StructuredLog
from runhq.db.session import build_engine
from runhq.registry.service import get_registry
from runhq.runs import service as runs

_TABLES = ("runs", "structured_logs", "run_approvals", "schedules")


@pytest.fixture
def at_0008(fresh_database_url: str) -> Iterator[Engine]:
    engine = build_engine(fresh_database_url)
    upgrade(engine, "0008")
    yield engine
    engine.dispose()


def _history(engine: Engine) -> dict[str, uuid.UUID]:
    """A run with its log line, approval and schedule; its retry, linked to it."""
    with Session(engine) as session:
        ws = auth.create_workspace(session, name="rebuild")
        user = auth.create_user(
            session, email="o@example.com", password="x" * 12, workspace_id=ws.id, role=Role.owner
        )
        actor = auth.Actor(user_id=user.id, workspace_id=ws.id, role=Role.owner)
        first, _ = runs.create_run(session, actor, get_registry(), run_type="DAILY_EXECUTIVE_BRIEF")
        first.status, first.active_key = "failed", None
        first.prompt = {"messages": [{"role": "user", "content": "x" * 9000}]}  # overflow pages
        first.output = {"executive_summary": "s", "sections": []}
        first.executive_summary, first.actual_cost = "done", 0.25
        session.flush()
        retry = Run(
            workspace_id=ws.id,
            run_type=first.run_type,
            agent=first.agent,
            status="queued",
            model_requested=first.model_requested,
            parent_run_id=first.id,
            attempt=2,
        )
        session.add(retry)
        session.flush()
        session.add(RunApproval(workspace_id=ws.id, run_id=first.id, decision="approved"))
        session.add(
            Schedule(
                workspace_id=ws.id,
                job_key="daily",
                run_type=first.run_type,
                cron="0 7 * * *",
                last_run_id=retry.id,
            )
        )
        session.commit()
        return {"first": first.id, "retry": retry.id}


def _snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            name: [
                dict(row._mapping)
                for row in conn.execute(
                    select(Base.metadata.tables[name]).order_by(Base.metadata.tables[name].c.id)
                )
            ]
            for name in _TABLES
        }


def test_the_rebuild_keeps_every_row_and_reference(at_0008: Engine) -> None:
    ids = _history(at_0008)
    before = _snapshot(at_0008)
    assert all(before[name] for name in _TABLES)
    upgrade(at_0008)

    assert _snapshot(at_0008) == before
    with Session(at_0008) as session:
        retry = session.get(Run, ids["retry"])
        assert retry is not None
        assert retry.parent_run_id == ids["first"]
        assert session.scalar(select(StructuredLog.run_id)) == ids["first"]
    columns = [c["name"] for c in inspect(at_0008).get_columns("runs")]
    indexes = {ix["name"] for ix in inspect(at_0008).get_indexes("runs")}
    assert "ix_runs_workspace_status_created" in indexes
    assert "ix_runs_workspace_status" not in indexes
    if at_0008.dialect.name == "sqlite":
        # What scans read comes before every large document.
        scanned = ("status", "created_at", "finished_at", "run_type", "platform_key", "agent")
        scanned += ("actual_cost", "estimated_cost", "duration_ms", "executive_summary", "error")
        large = ("prompt", "context", "output", "plan", "action_result")
        assert max(columns.index(c) for c in scanned) < min(columns.index(c) for c in large)
    # Foreign keys are enforced again on the pooled connections.
    with pytest.raises(IntegrityError), at_0008.begin() as conn:
        conn.execute(
            text("UPDATE structured_logs SET run_id = :missing"), {"missing": uuid.uuid4().hex}
        )


def test_a_migration_leaving_a_broken_reference_is_rolled_back(at_0008: Engine) -> None:
    if at_0008.dialect.name != "sqlite":
        pytest.skip("the reference check guards SQLite's rebuilds; PostgreSQL enforces always")
    ids = _history(at_0008)
    # A reference broken behind SQLite's back (foreign keys off on this connection).
    with at_0008.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "UPDATE run_approvals SET run_id = ?", (uuid.uuid4().hex,)
        )
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match=r"1 broken reference\(s\) \(run_approvals -> runs\)"):
        upgrade(at_0008)
    with at_0008.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        names = {ix["name"] for ix in inspect(conn).get_indexes("runs")}
    assert version == "0008"
    assert "ix_runs_workspace_status" in names
    assert ids


def test_json_null_documents_become_sql_null(fresh_database_url: str) -> None:
    engine = build_engine(fresh_database_url)
    try:
        upgrade(engine, "0009")
        ids = _history(engine)
        # As Core wrote None before 0010: the JSON document 'null'.
        literal = "'null'::jsonb" if engine.dialect.name == "postgresql" else "'null'"
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE runs SET plan = {literal}, context = {literal} WHERE id = :id"),  # noqa: S608
                {"id": ids["retry"].hex if engine.dialect.name == "sqlite" else ids["retry"]},
            )
            assert conn.execute(text("SELECT count(*) FROM runs WHERE plan IS NULL")).scalar() == 1
        upgrade(engine)
        with engine.connect() as conn:
            nulls = conn.execute(
                text("SELECT count(*) FROM runs WHERE plan IS NULL AND context IS NULL")
            ).scalar()
            kept = conn.execute(text("SELECT count(*) FROM runs WHERE prompt IS NOT NULL")).scalar()
        assert (nulls, kept) == (2, 1)  # the first run's prompt is a document, and stays
    finally:
        engine.dispose()


def test_a_new_run_has_sql_nulls_not_json_nulls(at_0008: Engine) -> None:
    """Created by the service (runhq.db.compiled) or through the ORM: None is SQL NULL."""
    upgrade(at_0008)
    ids = _history(at_0008)
    runs_table = Base.metadata.tables["runs"]
    columns = ("price", "context", "plan", "action_result")
    with at_0008.connect() as conn:
        rows = conn.execute(
            select(*(runs_table.c[name].is_(None) for name in columns)).where(
                runs_table.c.id.in_(list(ids.values()))
            )
        ).all()
    assert len(rows) == 2
    for row in rows:
        assert all(row), dict(zip(columns, row, strict=True))
