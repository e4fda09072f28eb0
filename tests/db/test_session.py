"""After-commit side effects fire once the outermost transaction commits, never before."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from runhq.auth import service as auth
from runhq.db import session as session_module
from runhq.db.compiled import send_on_cursor
from runhq.db.migrate import upgrade
from runhq.db.session import (
    SQLITE_CHECKPOINT_PAGES,
    allow_async_commit,
    build_engine,
    is_reader,
    make_reader_factory,
    make_session_factory,
    on_commit,
    self_contained_writes,
    transaction,
)
from runhq.runs import service as runs
from runhq.runtime import Runtime
from tests.conftest import PG_ADMIN_URL, Team, service_unavailable


def test_notify_waits_for_the_outer_commit_not_a_savepoint(
    session: Session, runtime: Runtime, team: Team
) -> None:
    notified: list[uuid.UUID] = []
    # create_run releases a SAVEPOINT internally; the second one must not announce the first.
    first, _ = runs.create_run(
        session, team.owner, runtime.registry, run_type="SEO_AUDIT", notify=notified.append
    )
    runs.create_run(
        session, team.owner, runtime.registry, run_type="CODE_REVIEW", notify=notified.append
    )
    assert notified == []
    session.commit()
    assert notified[0] == first.id
    assert len(notified) == 2


def test_rolled_back_work_is_never_announced(session: Session) -> None:
    called: list[int] = []
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: called.append(1))
    session.rollback()
    session.commit()
    assert called == []


def test_a_reader_runs_each_statement_alone_and_holds_no_lock(fresh_database_url: str) -> None:
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    try:
        readers = make_reader_factory(engine)
        writers = make_session_factory(engine)
        with readers() as reader:
            assert is_reader(reader)
            with pytest.raises(DBAPIError):
                reader.execute(text("SELECT * FROM no_such_table"))
            # No transaction was aborted: the next statement just runs.
            assert reader.execute(text("SELECT 1")).scalar() == 1
            # A writer commits while the reader is still open after reading (SQLite: the
            # reader took no write lock; PostgreSQL: it holds no snapshot).
            with transaction(writers) as writer:
                assert not is_reader(writer)
                auth.create_workspace(writer, name="written-while-reading")
            names = reader.scalars(text("SELECT name FROM workspaces")).all()
            assert "written-while-reading" in names

        # Connections go back to the pool in their normal mode: writes are transactions.
        def write_then_fail() -> None:
            with transaction(writers) as writer:
                auth.create_workspace(writer, name="rolled-back")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            write_then_fail()
        with writers() as check:
            names = check.scalars(text("SELECT name FROM workspaces")).all()
            assert "rolled-back" not in names
    finally:
        engine.dispose()


def test_async_commit_is_local_to_its_transaction(fresh_database_url: str) -> None:
    engine = build_engine(fresh_database_url)
    try:
        with engine.begin() as conn:
            allow_async_commit(conn)
            if conn.dialect.name == "postgresql":
                assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # SET LOCAL: the pooled connection goes back to synchronous commits.
                assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
            else:
                # SQLite: nothing was sent; WAL mode with synchronous=NORMAL (1) as configured.
                assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_connections_checkpoint_the_wal_past_64_mb(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA wal_autocheckpoint").scalar() == SQLITE_CHECKPOINT_PAGES
            assert SQLITE_CHECKPOINT_PAGES * pragma("PRAGMA page_size").scalar() == 65_536_000
            assert pragma("PRAGMA journal_size_limit").scalar() == 64 * 1024 * 1024
    finally:
        engine.dispose()


def test_self_contained_writes_commit_each_statement_or_one_transaction(
    fresh_database_url: str,
) -> None:
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    postgresql = engine.dialect.name == "postgresql"
    insert = text("INSERT INTO workspaces (id, name, slug, created_at) VALUES (:id, :n, :n, :at)")

    readers = make_reader_factory(engine)  # no write lock taken: SQLite's is held meanwhile

    def names() -> list[str]:
        with readers() as reader:
            return list(reader.scalars(text("SELECT name FROM workspaces ORDER BY name")))

    try:
        with self_contained_writes(engine) as conn:
            conn.execute(insert, {"id": uuid.uuid4().hex, "n": "first", "at": "2026-01-01"})
            # PostgreSQL: autocommit, already visible elsewhere. SQLite: one transaction,
            # committed when the block exits.
            assert names() == (["first"] if postgresql else [])
        assert names() == ["first"]

        def fail_after_a_write() -> None:
            with self_contained_writes(engine) as conn:
                conn.execute(insert, {"id": uuid.uuid4().hex, "n": "second", "at": "2026-01-01"})
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_after_a_write()
        # Each statement stands alone on PostgreSQL; SQLite rolls the block back. Which is why
        # only writes that are one statement on PostgreSQL may use it.
        assert names() == (["first", "second"] if postgresql else ["first"])

        # The pooled connection is back in its normal mode: a transaction rolls back.
        def fail_in_a_transaction() -> None:
            with engine.begin() as conn:
                conn.execute(insert, {"id": uuid.uuid4().hex, "n": "third", "at": "2026-01-01"})
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_in_a_transaction()
        assert "third" not in names()
    finally:
        engine.dispose()


def _pg_engine() -> Engine:
    try:
        engine = build_engine(PG_ADMIN_URL, pool_size=1, max_overflow=0)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        service_unavailable("PostgreSQL", str(exc))
    return engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    with build_engine(PG_ADMIN_URL).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()


def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _pg_engine()
    try:
        dead = _backend_pid(engine)
        _terminate(dead)
        monkeypatch.setattr(session_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # idle enough
        assert _backend_pid(engine) != dead  # pinged, found dead, replaced: no error
    finally:
        engine.dispose()


def test_a_connection_used_moments_ago_is_not_pinged_and_a_dead_one_fails_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _pg_engine()
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    try:
        dead = _backend_pid(engine)
        _backend_pid(engine)
        assert pings == []  # no round trip before a statement on a hot connection
        _terminate(dead)
        # Within the idle window the dead connection is handed out: its statement fails and
        # invalidates the pool (optimistic handling); the next use gets a fresh connection.
        with pytest.raises(DBAPIError) as failed:
            _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert _backend_pid(engine) != dead
    finally:
        engine.dispose()


def _sqlite_with_notes(path: Path) -> Engine:
    engine = build_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text("CREATE TABLE notes (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents)")
        )
    return engine


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM notes")).scalar_one())


def test_sqlite_writes_run_in_the_drivers_transaction_seen_by_listeners(tmp_path: Path) -> None:
    engine = _sqlite_with_notes(tmp_path / "w.db")
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2].split()[0]))
    event.listen(engine, "commit", lambda _c: seen.append("commit"))
    event.listen(engine, "rollback", lambda _c: seen.append("rollback"))
    try:
        with self_contained_writes(engine) as conn:
            # The write lock is taken at BEGIN: another writer cannot start meanwhile.
            other = sqlite3.connect(tmp_path / "w.db", timeout=0, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
            send_on_cursor(conn, "INSERT INTO notes (id) VALUES (1)").close()
            assert not conn.in_transaction()  # SQLAlchemy was not asked to begin
        assert seen == ["BEGIN", "INSERT", "commit"]
        assert _count(engine) == 1

        seen.clear()

        def fail_after_a_write() -> None:
            with self_contained_writes(engine) as conn:
                send_on_cursor(conn, "INSERT INTO notes (id) VALUES (2)").close()
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_after_a_write()
        assert seen == ["BEGIN", "INSERT", "rollback"]
        assert _count(engine) == 1
    finally:
        engine.dispose()


def test_sqlalchemy_statements_join_the_drivers_sqlite_transaction(tmp_path: Path) -> None:
    engine = _sqlite_with_notes(tmp_path / "j.db")
    insert = text("INSERT INTO notes (id) VALUES (:id)")
    try:
        with self_contained_writes(engine) as conn:
            send_on_cursor(conn, "INSERT INTO notes (id) VALUES (1)").close()
            conn.execute(insert, {"id": 2})  # no second BEGIN: it joins
            assert conn.in_transaction()
        assert _count(engine) == 2

        def fail_after_both_kinds() -> None:
            with self_contained_writes(engine) as conn:
                send_on_cursor(conn, "INSERT INTO notes (id) VALUES (3)").close()
                conn.execute(insert, {"id": 4})
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_after_both_kinds()
        assert _count(engine) == 2  # both kinds of write rolled back together
    finally:
        engine.dispose()


@pytest.mark.parametrize("through", ["cursor", "sqlalchemy"])
def test_a_failed_sqlite_commit_writes_nothing_and_leaves_nothing_open(
    tmp_path: Path, through: str
) -> None:
    """Through the cursor, or after a SQLAlchemy statement joined the block's transaction."""
    engine = _sqlite_with_notes(tmp_path / "c.db")
    orphan = "INSERT INTO notes (id, parent) VALUES (1, 42)"
    try:

        def write_an_orphan() -> None:
            with self_contained_writes(engine) as conn:
                # Checked at COMMIT: the statement passes, the commit fails.
                send_on_cursor(conn, "PRAGMA defer_foreign_keys=ON").close()
                if through == "cursor":
                    send_on_cursor(conn, orphan).close()
                else:
                    conn.execute(text(orphan))  # joins the block's transaction

        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            write_an_orphan()
        assert _count(engine) == 0
        # The pooled connection holds no transaction: another writer gets the lock at once…
        other = sqlite3.connect(tmp_path / "c.db", timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
        other.close()
        # …and the next unit of work on it does not inherit the failed block's write.
        with Session(engine) as session:
            session.execute(text("INSERT INTO parents (id) VALUES (42)"))
            session.commit()
        assert _count(engine) == 0
        with self_contained_writes(engine) as conn:
            send_on_cursor(conn, "INSERT INTO notes (id) VALUES (1)").close()
        assert _count(engine) == 1
    finally:
        engine.dispose()


def test_a_failed_sqlite_begin_is_a_sqlalchemy_error(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.connect() as conn:  # the pool's one connection: fail at once, not in 30 s
        conn.connection.driver_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
    holder = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        blocks: list[int] = []

        def write() -> None:
            with self_contained_writes(engine):
                blocks.append(1)

        with pytest.raises(OperationalError, match="locked"):
            write()
        assert blocks == []  # the block never ran without the write lock
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


def test_writes_can_reuse_the_reading_connection(fresh_database_url: str) -> None:
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    insert = text("INSERT INTO workspaces (id, name, slug, created_at) VALUES (:id, :n, :n, :at)")
    reader_engine = make_reader_factory(engine).kw["bind"]
    try:
        with reader_engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM workspaces")).scalar()
            checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
            with self_contained_writes(engine, reuse=conn) as writer:
                assert writer is conn
                assert engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]
                writer.execute(insert, {"id": uuid.uuid4().hex, "n": "reused", "at": "2026-01-01"})
        with engine.connect() as check:
            names = check.execute(text("SELECT name FROM workspaces")).scalars().all()
        assert "reused" in names  # committed, on either backend

        # Any other connection is refused: in a transaction of its own (PostgreSQL), its
        # writes would never be committed.
        with engine.connect() as conn, pytest.raises(ValueError, match="reader's connection"):
            with self_contained_writes(engine, reuse=conn):
                pass
    finally:
        engine.dispose()


def test_a_reading_connection_with_an_old_snapshot_hands_the_writes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = _sqlite_with_notes(tmp_path / "s.db")
    with engine.begin() as conn:
        for i in range(300):
            conn.execute(text("INSERT INTO notes (id) VALUES (:i)"), {"i": i})
    reader_engine = make_reader_factory(engine).kw["bind"]
    try:
        with reader_engine.connect() as reader:
            unfinished = reader.execute(text("SELECT id FROM notes"))
            unfinished.fetchone()  # its statement keeps a read snapshot open
            with engine.begin() as other:  # another connection commits meanwhile
                other.execute(text("INSERT INTO notes (id) VALUES (1000)"))
            with self_contained_writes(engine, reuse=reader) as writer:
                assert writer is not reader  # BEGIN IMMEDIATE could not wait its turn there
                writer.execute(text("INSERT INTO notes (id) VALUES (1001)"))
            unfinished.close()
        assert _count(engine) == 302
        assert "could not begin on the reading connection" in caplog.text
    finally:
        engine.dispose()
