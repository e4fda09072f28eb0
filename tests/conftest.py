"""Test fixtures: a real database per run (SQLite or PostgreSQL, migrated with Alembic),
each test inside a transaction rolled back at the end, and factories for data.

``RUNHQ_TEST_DB=postgresql`` runs the suite on PostgreSQL (``RUNHQ_TEST_PG_URL``, default
the local server); the default is SQLite. Without PostgreSQL, PostgreSQL tests skip loudly
outside CI and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# The developer's own RUNHQ_* settings must not leak into tests.
for _name in list(os.environ):
    if _name.startswith("RUNHQ_") and not _name.startswith("RUNHQ_TEST_"):
        del os.environ[_name]

from runhq.auth import service as auth  # noqa: E402
from runhq.auth.models import Role  # noqa: E402
from runhq.auth.schemas import Actor  # noqa: E402
from runhq.config import Settings  # noqa: E402
from runhq.db.migrate import upgrade  # noqa: E402
from runhq.db.session import build_engine  # noqa: E402
from runhq.llm.gateway import Gateway  # noqa: E402
from runhq.registry.service import get_registry  # noqa: E402
from runhq.runs.engine import Engine as RunEngine  # noqa: E402
from runhq.runtime import Runtime  # noqa: E402
from runhq.web.app import create_app  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKEND = os.environ.get("RUNHQ_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get(
    "RUNHQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "a-long-password-1"


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """Real Argon2, with the cheapest parameters: hashing dominates fixture time otherwise."""
    from argon2 import PasswordHasher

    original = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    auth._hasher = original


def service_unavailable(what: str, why: str) -> None:
    """Skip loudly outside CI; under CI a missing service is a failure."""
    message = f"{what} unavailable: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services must run)")
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


def _create_pg_database() -> tuple[str, Engine]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"runhq_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return url, admin


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    try:
        url, admin = _create_pg_database()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        service_unavailable("PostgreSQL", f"{type(exc).__name__}: {exc}")
        return
    yield url
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the configured backend, for code that commits for real."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    try:
        url, admin = _create_pg_database()
    except Exception as exc:  # noqa: BLE001
        service_unavailable("PostgreSQL", f"{type(exc).__name__}: {exc}")
        return
    yield url
    from runhq.db.session import get_engine

    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(db_engine: Engine) -> Iterator[Connection]:
    """One connection in an outer transaction that the test never commits."""
    conn = db_engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    # Commits inside the code under test release savepoints; the outer rollback undoes all.
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    s = sessions()
    yield s
    s.close()


def make_settings(tmp: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp,
        "database_url": database_url,
        "secret_key": "test-secret-key-" + "x" * 32,
        "llm_retry_base_seconds": 0.01,
        "llm_retry_max_seconds": 0.05,
        "llm_timeout_seconds": 5,
        # Tests share one connection across threads: no background heartbeat unless asked.
        "heartbeat_seconds": 3600,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


def make_runtime(settings: Settings, sessions: sessionmaker[Session], db: Engine) -> Runtime:
    registry = get_registry(settings.registry_path)
    gateway = Gateway(settings)
    return Runtime(
        settings=settings,
        db=db,
        sessions=sessions,
        registry=registry,
        gateway=gateway,
        engine=RunEngine(sessions, settings, registry, gateway),
    )


@pytest.fixture
def runtime(settings: Settings, sessions: sessionmaker[Session], db_engine: Engine) -> Runtime:
    return make_runtime(settings, sessions, db_engine)


@dataclass
class Team:
    """A workspace with one user per role."""

    workspace_id: uuid.UUID
    owner: Actor
    admin: Actor
    operator: Actor
    viewer: Actor
    emails: dict[Role, str]


def make_team(session: Session, name: str | None = None) -> Team:
    name = name or f"ws-{uuid.uuid4().hex[:8]}"
    ws = auth.create_workspace(session, name=name)
    actors: dict[Role, Actor] = {}
    emails: dict[Role, str] = {}
    for role in Role:
        email = f"{role.value}-{uuid.uuid4().hex[:6]}@{name}.example.com"
        user = auth.create_user(
            session, email=email, password=PASSWORD, workspace_id=ws.id, role=role
        )
        actors[role] = Actor(user_id=user.id, workspace_id=ws.id, role=role)
        emails[role] = email
    session.commit()
    return Team(
        workspace_id=ws.id,
        owner=actors[Role.owner],
        admin=actors[Role.admin],
        operator=actors[Role.operator],
        viewer=actors[Role.viewer],
        emails=emails,
    )


@pytest.fixture
def team(session: Session) -> Team:
    return make_team(session)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    app = create_app(runtime, background=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(runtime: Runtime, actor: Actor) -> dict[str, str]:
    with runtime.sessions() as session:
        token = auth.issue_token(
            session, actor, secret=runtime.settings.get_secret_key(), ttl_minutes=60
        )
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def counted_statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent through ``engine`` meanwhile."""
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _placeholder(bind: Any) -> Any:
    """A value of the parameter's type, for a plan (what it matches does not matter)."""
    kind = type(bind.type).__name__
    if bind.key == "limit" or "Integer" in kind:
        return 10
    if "Uuid" in kind or "UUID" in kind:
        return uuid.uuid4()
    if "DateTime" in kind:
        return datetime(2026, 1, 1, tzinfo=UTC)
    return "x"


def sqlite_plan(session: Session, statement: Any) -> str:
    """SQLite's query plan for ``statement`` as runhq sends it (IN lists expanded), with
    placeholder values for its parameters: the plan's lines joined by `` | ``."""
    conn = session.connection()
    compiled = statement.compile(dialect=conn.dialect)
    params = {b.key: _placeholder(b) for b in compiled.binds.values() if b.required}
    plans: list[str] = []

    def explain(_conn: Any, cursor: Any, sql: str, args: Any, *_: Any) -> None:
        rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
        plans.append(" | ".join(str(row[3]) for row in rows))

    event.listen(conn, "before_cursor_execute", explain)
    try:
        conn.execute(statement, params).all()
    finally:
        event.remove(conn, "before_cursor_execute", explain)
    return plans[0]
