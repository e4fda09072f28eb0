"""RLS_POLICY_UPDATE on a real PostgreSQL database: the plan is the SQL; the act runs it in
one transaction and records pg_policies before and after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from runhq.platforms import service as platforms
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import PG_ADMIN_URL, Team, service_unavailable

POLICY_SQL = (
    "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY; "
    "CREATE POLICY workspace_isolation ON invoices "
    "USING (workspace_id = current_setting('app.workspace_id')::uuid)"
)


@pytest.fixture
def product_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A product's own PostgreSQL database (not runhq's), with a table to protect."""
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"product_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        service_unavailable("PostgreSQL", str(exc))
        return
    dsn = make_url(PG_ADMIN_URL).set(drivername="postgresql", database=name)
    url = dsn.render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id serial PRIMARY KEY, workspace_id uuid)")
    monkeypatch.setenv("RUNHQ_TEST_PRODUCT_DB", url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _planned(rt: Runtime, session: Session, team: Team, sql: str | None) -> Run:
    platforms.create_platform(
        session,
        team.admin,
        key="billing",
        name="Billing",
        deploy_target={"database_url_env": "RUNHQ_TEST_PRODUCT_DB"},
    )
    params = {"table": "invoices"} | ({"sql": sql} if sql else {})
    run, _ = runs.create_run(
        session,
        team.operator,
        rt.registry,
        run_type="RLS_POLICY_UPDATE",
        platform_key="billing",
        params=params,
    )
    session.commit()
    assert rt.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    return run


def test_policy_sql_is_applied_with_before_and_after(
    runtime: Runtime, session: Session, team: Team, product_db: str
) -> None:
    run = _planned(runtime, session, team, POLICY_SQL)
    assert run.plan is not None
    assert run.plan["sql"] == POLICY_SQL
    runs.approve_run(session, team.owner, run.id, reason="isolation")
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    result = run.action_result
    assert result is not None
    assert result["before"] == []
    assert [p["policyname"] for p in result["after"]] == ["workspace_isolation"]
    with psycopg.connect(product_db) as conn:
        rls = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE relname = 'invoices'"
        ).fetchone()
    assert rls == (True,)


def test_a_plan_without_sql_refuses_to_act(
    runtime: Runtime, session: Session, team: Team, product_db: str
) -> None:
    run = _planned(runtime, session, team, None)
    runs.approve_run(session, team.owner, run.id, reason="x")
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "no SQL" in (run.error or "")


def test_non_policy_sql_is_refused_and_nothing_changes(
    runtime: Runtime, session: Session, team: Team, product_db: str
) -> None:
    run = _planned(runtime, session, team, "DROP TABLE invoices")
    runs.approve_run(session, team.owner, run.id, reason="x")
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "only row-level-security statements" in (run.error or "")
    with psycopg.connect(product_db) as conn:
        assert conn.execute("SELECT to_regclass('invoices')").fetchone() == ("invoices",)


def test_failing_sql_rolls_back_everything(
    runtime: Runtime, session: Session, team: Team, product_db: str
) -> None:
    bad = "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON missing USING (true)"
    run = _planned(runtime, session, team, bad)
    runs.approve_run(session, team.owner, run.id, reason="x")
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "rolled back" in (run.error or "")
    with psycopg.connect(product_db) as conn:
        rls = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE relname = 'invoices'"
        ).fetchone()
    assert rls == (False,)
