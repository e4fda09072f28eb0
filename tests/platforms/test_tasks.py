"""The leader's scheduled health checks: an endpoint that takes its time never holds the
database (SQLite's write lock included) while it is probed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.platforms import service
from runhq.platforms.models import HealthCheck
from runhq.platforms.tasks import run_due_checks
from tests.conftest import make_team
from tests.fakes.health_server import FakeHealth


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    db = build_engine(fresh_database_url)
    upgrade(db)
    yield db
    db.dispose()


def test_a_slow_endpoint_does_not_hold_the_database(
    engine: Engine, fresh_database_url: str
) -> None:
    sessions: sessionmaker[Session] = make_session_factory(engine)
    with transaction(sessions) as session:
        team = make_team(session)
    with FakeHealth() as health:
        with transaction(sessions) as session:
            service.create_platform(
                session, team.admin, key="app", name="App", health_urls=[health.url]
            )
        health.hold = True
        checked: list[int] = []
        worker = threading.Thread(target=lambda: checked.append(run_due_checks(sessions)))
        worker.start()
        assert health.arrived.wait(30), "the probe never reached the endpoint"
        # The probe is in flight. Another writer, which would give up after 1 s on a locked
        # SQLite database (and wait on no row lock on PostgreSQL), commits now.
        impatient = create_engine(fresh_database_url, connect_args=_short_wait(engine))
        try:
            with impatient.begin() as conn:
                conn.execute(text("UPDATE platforms SET name = 'App (renamed)'"))
        finally:
            impatient.dispose()
            health.release.set()
            worker.join(30)
    assert checked == [1]
    with sessions() as session:
        assert session.scalar(select(func.count(HealthCheck.id))) == 1
        platform = service.get_platform(session, team.workspace_id, "app")
        assert platform.name == "App (renamed)"  # the check did not write over the rename
        assert platform.last_checked_at is not None


def _short_wait(engine: Engine) -> dict[str, object]:
    return {"timeout": 1} if engine.dialect.name == "sqlite" else {}
