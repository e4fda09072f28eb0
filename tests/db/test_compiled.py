"""``runhq.db.compiled``: a statement sent on the DBAPI cursor binds, converts, reports and
fails exactly as SQLAlchemy's own execution does (SQLite, the backend it is used on)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    Uuid,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import ArgumentError, IntegrityError

from runhq.db.base import JSONType, UTCDateTime
from runhq.db.compiled import Compiled
from runhq.db.session import build_engine
from tests.conftest import counted_statements

_META = MetaData()
_ITEMS = Table(
    "items",
    _META,
    Column("id", Uuid, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("payload", JSONType),
    Column("flag", Boolean, nullable=False),
    Column("cost", Float),
    Column("at", UTCDateTime),
)
_INSERT = Compiled(insert(_ITEMS))
_READ = Compiled(select(_ITEMS).where(_ITEMS.c.id == bindparam("item_id")))
# The statement fixes a value itself ('queued'): it must be bound as SQLAlchemy binds it.
_START = Compiled(
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("item_id"), _ITEMS.c.status == "queued")
    .values(status=bindparam("status"))
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = build_engine(f"sqlite:///{tmp_path / 'compiled.db'}")
    _META.create_all(engine)
    yield engine
    engine.dispose()


def _row(**overrides: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "status": "queued",
        "payload": {"facts": ["é", 1, None], "nested": {"ok": True}},
        "flag": True,
        "cost": 0.25,
        "at": datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC),
        **overrides,
    }


def test_values_round_trip_as_sqlalchemy_converts_them(db: Engine) -> None:
    row = _row()
    with db.begin() as conn:
        assert _INSERT.rowcount(conn, row) == 1
    with db.connect() as conn:
        core = conn.execute(select(_ITEMS).where(_ITEMS.c.id == row["id"])).one()._asdict()
        ours = _READ.first(conn, {"item_id": row["id"]})
    assert core == row  # what the cursor wrote reads back through Core unchanged
    assert ours == core  # and reads back through Compiled as Core converts it
    assert isinstance(ours["id"], uuid.UUID)
    assert ours["at"].tzinfo is UTC


def test_a_missing_row_is_none(db: Engine) -> None:
    with db.connect() as conn:
        assert _READ.first(conn, {"item_id": uuid.uuid4()}) is None


def test_values_fixed_in_the_statement_are_bound(db: Engine) -> None:
    row = _row()
    with db.begin() as conn:
        _INSERT.rowcount(conn, row)
        assert _START.rowcount(conn, {"item_id": row["id"], "status": "running"}) == 1
        # No longer 'queued': the compare-and-set matches nothing.
        assert _START.rowcount(conn, {"item_id": row["id"], "status": "running"}) == 0


def test_a_missing_parameter_is_named_and_nothing_is_sent(db: Engine) -> None:
    with db.begin() as conn, counted_statements(db) as statements:
        with pytest.raises(ArgumentError, match="'status'"):
            _START.rowcount(conn, {"item_id": uuid.uuid4()})
    assert statements == []


def test_driver_errors_are_sqlalchemy_errors_and_the_transaction_goes_on(db: Engine) -> None:
    row = _row()
    with db.begin() as conn:
        _INSERT.rowcount(conn, row)
        with pytest.raises(IntegrityError, match="UNIQUE"):
            _INSERT.rowcount(conn, row)
        other = _row()
        _INSERT.rowcount(conn, other)  # the failed statement left the transaction usable
    with db.connect() as conn:
        assert {r for r in conn.execute(select(_ITEMS.c.id)).scalars()} == {row["id"], other["id"]}


def test_statements_are_seen_by_cursor_listeners(db: Engine) -> None:
    with db.begin() as conn, counted_statements(db) as statements:
        _INSERT.rowcount(conn, _row())
    assert len(statements) == 1
    assert statements[0].startswith("INSERT INTO items")


def test_the_transaction_is_sqlalchemys(db: Engine) -> None:
    with db.connect() as conn:
        trans = conn.begin()
        _INSERT.rowcount(conn, _row())
        trans.rollback()
    with db.connect() as conn:
        assert conn.execute(select(_ITEMS.c.id)).first() is None


def test_unsupported_statements_are_refused_when_compiled(db: Engine) -> None:
    expanding = Compiled(select(_ITEMS).where(_ITEMS.c.id.in_(bindparam("ids", expanding=True))))
    with db.connect() as conn, pytest.raises(TypeError, match="expanding"):
        expanding.first(conn, {"ids": [uuid.uuid4()]})
    # psycopg's named parameters: PostgreSQL keeps SQLAlchemy's own execution.
    with pytest.raises(TypeError, match="positional"):
        _READ._form(postgresql.psycopg.dialect())


def test_the_same_calls_work_on_the_configured_backend(connection: Connection) -> None:
    # On PostgreSQL they go through SQLAlchemy's execution; on SQLite on the cursor.
    _META.create_all(connection)
    row = _row()
    assert _INSERT.rowcount(connection, row) == 1
    assert _READ.first(connection, {"item_id": row["id"]}) == row
    assert _READ.all(connection, {"item_id": row["id"]}) == [row]
    assert _START.rowcount(connection, {"item_id": row["id"], "status": "running"}) == 1
    assert _START.rowcount(connection, {"item_id": row["id"], "status": "running"}) == 0
    assert _READ.first(connection, {"item_id": uuid.uuid4()}) is None
