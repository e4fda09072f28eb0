"""Engines and sessions. Only request/task boundaries commit; side effects run after commit."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from runhq.db.compiled import driver_error, send_on_cursor

logger = logging.getLogger(__name__)

_AFTER_COMMIT = "runhq_after_commit"
# WAL pages (4 KiB) after which a commit checkpoints the SQLite WAL into the database: the
# backstop behind the background checkpointer (runhq.db.checkpoint).
SQLITE_CHECKPOINT_PAGES = 16000
# Every SQLite connection's settings (the benchmarks' bare connections use them too).
SQLITE_PRAGMAS = (
    # WAL lets the dashboard read while a worker writes; a commit waits for no fsync.
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",  # off by default in SQLite
    "PRAGMA busy_timeout=30000",
    # A long-lived process checkpoints the WAL on a background thread (runhq.db.checkpoint,
    # ADR 0019). A commit checkpoints only past ~64 MB of WAL: when that thread lags behind
    # a burst, or in a process that runs none (a one-off CLI command). A checkpoint (the
    # only fsyncs in WAL mode with synchronous=NORMAL) copies each page once however often
    # it changed, so fewer, larger ones cost no more in all (docs/benchmarks.md). After a
    # checkpoint the WAL file is cut back to 64 MB at most.
    f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}",
    "PRAGMA journal_size_limit=67108864",
)
_READS_ONLY = "runhq_reads_only"
# Set on a connection while _sqlite_write_transaction holds a driver transaction open on it.
_DRIVER_TRANSACTION = "runhq_driver_transaction"


def build_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings runhq needs on each backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()
            # Let SQLAlchemy, not pysqlite, emit BEGIN (SQLAlchemy's documented recipe).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn: Any) -> None:
            if conn.get_execution_options().get(_READS_ONLY):
                return  # autocommit reads (see make_reader_factory): no transaction, no lock
            if conn.info.get(_DRIVER_TRANSACTION):
                return  # begun by _sqlite_write_transaction: SQLAlchemy's joins it
            # Take the write lock at BEGIN: avoids deadlocking upgrades of read locks
            # between concurrent writers (pysqlite's deferred BEGIN does not).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


# A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0
_LAST_USED = "runhq_last_used"


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling for idle connections only (SQLAlchemy's documented
    checkout-event recipe): a connection back in the pool for more than
    ``PING_AFTER_IDLE_SECONDS`` is pinged when checked out, and replaced if the ping fails;
    one used moments ago is handed out as is. ``pool_pre_ping`` pings on every checkout: a
    round trip on each step of every run, a third of what a run sends to PostgreSQL (ADR
    0014). A server restart while connections are busy still fails their statement, which
    invalidates the pool (SQLAlchemy's optimistic handling); the task or request fails once
    and its retry gets a fresh connection."""

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _used(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_LAST_USED, 0.0) <= PING_AFTER_IDLE_SECONDS:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_conn, None):
                raise
            # The pool discards this connection and checks out a new one (up to 3 tries).
            raise DisconnectionError("idle connection failed its ping") from exc
        record.info[_LAST_USED] = time.monotonic()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def make_reader_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose statements each commit on their own: for reads that must not hold a
    transaction open (SQLite's write lock, PostgreSQL's snapshot) and where one failed query
    must not abort the next, without a SAVEPOINT round trip around each. Never for writes
    that belong together."""
    if engine.dialect.name == "sqlite":
        # pysqlite runs with isolation_level=None (autocommit) until runhq emits BEGIN;
        # the begin hook above skips it for these connections.
        reader = engine.execution_options(**{_READS_ONLY: True})
    else:
        reader = engine.execution_options(isolation_level="AUTOCOMMIT", **{_READS_ONLY: True})
    return sessionmaker(bind=reader, expire_on_commit=False, autoflush=False)


def is_reader(session: Session) -> bool:
    """Whether ``session`` comes from ``make_reader_factory`` (each statement commits)."""
    return bool(session.get_bind().get_execution_options().get(_READS_ONLY))


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return build_engine(url)


def get_engine(url: str) -> Engine:
    """The process-wide engine for a URL (one pool per process)."""
    return _engine_for(url)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for a task or CLI boundary: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


@contextmanager
def self_contained_writes(
    engine: Engine, *, reuse: Connection | None = None
) -> Iterator[Connection]:
    """A connection for writes that are each one self-contained statement (a compare-and-set
    with its log line written by the same statement, a bookkeeping ``UPDATE``).

    On PostgreSQL the connection is in autocommit: each statement is its own transaction, with
    no ``BEGIN`` or ``COMMIT`` round trip. On SQLite, which cannot write a change and its log
    line in one statement, the statements share one transaction, committed on exit (rolled
    back on error). Either way nothing is left uncommitted once the block exits normally.
    See docs/adr/0014-one-statement-writes.md.

    ``reuse``: a reader's connection of ``engine``'s pool (``make_reader_factory``: each of
    its statements committed on its own) that the caller holds, such as the worker's: it
    carries the writes instead of a second checkout.
    """
    if reuse is not None:
        if not reuse.get_execution_options().get(_READS_ONLY):
            raise ValueError("only a reader's connection (make_reader_factory) can be reused")
        if reuse.in_transaction():
            reuse.commit()  # SQLAlchemy's own bookkeeping: each read committed on its own
    if engine.dialect.name == "sqlite":
        if reuse is not None:
            try:
                _sqlite_begin(reuse)
            except exc.OperationalError:
                # A read left unfinished on it keeps an old snapshot, and BEGIN IMMEDIATE then
                # fails at once instead of waiting its turn: a fresh connection waits.
                logger.warning("could not begin on the reading connection; using another")
            else:
                with _sqlite_write_transaction(reuse, begun=True):
                    yield reuse
                return
        with engine.connect() as conn, _sqlite_write_transaction(conn):
            yield conn
        return
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            yield conn
        return
    if reuse is not None:  # a reader's: in autocommit, as the writes below
        yield reuse
        return
    autocommit = _AUTOCOMMIT.get(engine)
    if autocommit is None:
        autocommit = _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        yield conn


def _sqlite_begin(conn: Connection) -> None:
    """``BEGIN IMMEDIATE`` on ``conn``'s driver, marked so that SQLAlchemy joins it."""
    send_on_cursor(conn, "BEGIN IMMEDIATE").close()
    conn.info[_DRIVER_TRANSACTION] = True


@contextmanager
def _sqlite_write_transaction(conn: Connection, *, begun: bool = False) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK``) on ``conn``'s DBAPI connection
    (``begun``: already sent by ``_sqlite_begin``).

    The run engine's steps write by statements sent on the DBAPI cursor (ADR 0015); opening
    and ending their transaction through SQLAlchemy's ``Connection.begin`` costs as much
    again (a ``Transaction``, the begin hook's ``exec_driver_sql``, the commit machinery).
    Here the transaction is the driver's: the engine's ``before_cursor_execute``, ``commit``
    and ``rollback`` listeners still see it, and a driver error is a ``sqlalchemy.exc`` one.
    A statement sent through SQLAlchemy inside the block (``Connection.execute``) makes it
    begin a transaction of its own: the begin hook sees this block's mark and sends no
    second ``BEGIN``, so SQLAlchemy joins the driver's, and the block ends it through
    SQLAlchemy (ADR 0020). Whatever fails, the connection leaves with no transaction open.
    """
    if not begun:
        _sqlite_begin(conn)
    dbapi: Any = conn.connection.driver_connection  # a sqlite3.Connection
    try:
        try:
            yield
        except BaseException:
            _sqlite_rollback(conn, dbapi)
            raise
        if conn.in_transaction():
            try:
                conn.commit()
            except BaseException:
                _sqlite_rollback(conn, dbapi)  # a failed COMMIT leaves SQLite's open
                raise
            return
        conn.dispatch.commit(conn)
        try:
            dbapi.commit()
        except conn.dialect.loaded_dbapi.Error as error:
            _sqlite_rollback(conn, dbapi)  # a failed COMMIT leaves the transaction open
            raise driver_error(conn, "COMMIT", (), error) from error
    finally:
        conn.info.pop(_DRIVER_TRANSACTION, None)


def _sqlite_rollback(conn: Connection, dbapi: Any) -> None:
    """End the block's transaction, SQLAlchemy's and the driver's, whichever are open."""
    if conn.get_transaction() is not None:  # active, or left inactive by a failed commit
        conn.rollback()
    if dbapi.in_transaction:
        conn.dispatch.rollback(conn)
        dbapi.rollback()


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def allow_async_commit(conn: Session | Connection) -> None:
    """Let the current transaction's commit return before PostgreSQL has flushed it to disk.

    Only for writes whose loss in a database crash is repaired by design: a worker's claim
    (the run goes back to ``queued`` and the dispatcher re-sends it), stored facts, a
    heartbeat, outbox bookkeeping. The commit skips the wait for the WAL flush; the write is
    on disk within ``wal_writer_delay`` (200 ms by default) or at the next synchronous commit,
    whichever comes first, since the WAL is written in order. A crash can lose it, never
    corrupt or reorder it. No-op on SQLite, whose WAL mode with ``synchronous=NORMAL`` never
    waits for the disk at commit. See docs/adr/0011-asynchronous-commits.md.
    """
    dialect = conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect
    if dialect.name == "postgresql":
        conn.execute(_ASYNC_COMMIT)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction has committed.

    Dropped on rollback: a side effect (enqueue, notify) must never announce
    something the database did not keep.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    # SQLAlchemy also fires after_commit when a SAVEPOINT is released: the outer
    # transaction has not committed then, and announcing now would let a worker look for
    # a row it cannot see yet.
    if session.in_nested_transaction():
        return
    callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failed notification must not undo a committed transaction
            logger.exception("after-commit callback failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction rolled back
        session.info.pop(_AFTER_COMMIT, None)
