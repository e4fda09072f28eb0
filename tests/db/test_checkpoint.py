"""The background WAL checkpointer: it copies what other connections committed, and only then;
it survives a failing database; the embedded server runs one on SQLite only."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from runhq.db.checkpoint import WalCheckpointer, start_wal_checkpointer
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine
from runhq.runtime import build_runtime
from runhq.web.app import create_app
from tests.conftest import make_settings

THREAD_NAME = "runhq-wal-checkpointer"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    path = tmp_path / "wal.db"
    engine = build_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    yield path, engine
    engine.dispose()


def _write(engine: Engine, rows: int = 50) -> None:
    with engine.begin() as conn:
        for i in range(rows):
            conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": "x" * 500 + str(i)})


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for the thread to do something (not a performance bound: a generous deadline)."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_a_look_copies_what_others_committed_and_only_then(
    sqlite_file: tuple[Path, Engine],
) -> None:
    path, engine = sqlite_file
    checkpointer = WalCheckpointer(path)
    _write(engine)
    first = checkpointer.checkpoint_if_changed()
    assert first is not None
    assert not first.busy
    assert first.wal_frames > 0
    assert first.copied_frames == first.wal_frames  # all of it, nobody reading
    # Nothing committed since: no checkpoint at all.
    assert checkpointer.checkpoint_if_changed() is None
    assert checkpointer.passes == 1
    _write(engine, rows=5)
    again = checkpointer.checkpoint_if_changed()
    assert again is not None
    assert again.copied_frames == again.wal_frames > 0
    assert checkpointer.passes == 2
    # What was copied is the database's: a fresh connection reads every row.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 55
    checkpointer.stop()  # closes its connection, though no thread ran
    assert checkpointer._connection is None


def test_a_pass_another_checkpointer_held_back_is_taken_again(
    sqlite_file: tuple[Path, Engine],
) -> None:
    path, engine = sqlite_file
    _write(engine)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    # Another process's checkpoint: FULL takes the checkpoint lock, then waits for the writer.
    other = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    probe = sqlite3.connect(path, isolation_level=None)
    blocked = threading.Thread()

    def held_by_the_other() -> bool:
        nonlocal blocked
        if not blocked.is_alive():  # not started, or it met the probe's own pass: again
            blocked = threading.Thread(target=lambda: other.execute("PRAGMA wal_checkpoint(FULL)"))
            blocked.start()
            return False
        return bool(probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 1)

    _wait_for(held_by_the_other, "the other checkpoint to hold its lock")
    checkpointer = WalCheckpointer(path)
    try:
        first = checkpointer.checkpoint_if_changed()
        assert first is not None
        assert first.busy
        again = checkpointer.checkpoint_if_changed()  # nothing committed since: still tried
        assert again is not None
        writer.rollback()
        blocked.join()
        done = checkpointer.checkpoint_if_changed()
        assert done is not None
        assert not done.busy
        assert checkpointer.checkpoint_if_changed() is None  # now it is up to date
    finally:
        checkpointer.stop()
        for conn in (writer, other, probe):
            conn.close()


def test_the_thread_checkpoints_commits_and_stops(sqlite_file: tuple[Path, Engine]) -> None:
    path, engine = sqlite_file
    checkpointer = WalCheckpointer(path, interval=0.01)
    checkpointer.start()
    checkpointer.start()  # already running: still one thread
    try:
        assert checkpointer.running
        assert len(_checkpointer_threads()) == 1
        _write(engine)
        _wait_for(lambda: checkpointer.passes >= 1, "a checkpoint")
    finally:
        checkpointer.stop()
    assert not checkpointer.running
    assert _checkpointer_threads() == []
    checkpointer.stop()  # stopping twice is harmless


def test_a_failing_database_is_reported_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-dir" / "runhq.db"
    checkpointer = WalCheckpointer(missing, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="runhq.db.checkpoint"):
        checkpointer.start()
        try:
            _wait_for(lambda: checkpointer.failures >= 3, "three failed looks")
        finally:
            checkpointer.stop()
    warnings = [r for r in caplog.records if r.name == "runhq.db.checkpoint"]
    assert len(warnings) == 1  # the same error again is not repeated
    assert str(missing) in warnings[0].getMessage()
    assert "commits checkpoint on their own" in warnings[0].getMessage()
    assert checkpointer.passes == 0


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "gone.db"
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        WalCheckpointer(missing).checkpoint_if_changed()
    assert not missing.exists()


def test_an_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        WalCheckpointer(tmp_path / "x.db", interval=0)


def test_only_a_sqlite_file_gets_one(tmp_path: Path) -> None:
    memory = build_engine("sqlite://")
    postgresql = build_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        assert start_wal_checkpointer(memory) is None
        assert start_wal_checkpointer(postgresql) is None  # PostgreSQL checkpoints itself
    finally:
        memory.dispose()
        postgresql.dispose()
    engine = build_engine(f"sqlite:///{tmp_path / 'file.db'}")
    checkpointer = start_wal_checkpointer(engine, interval=0.05)
    try:
        assert checkpointer is not None
        assert checkpointer.running
        assert checkpointer.path == tmp_path / "file.db"
    finally:
        if checkpointer is not None:
            checkpointer.stop()
        engine.dispose()


def test_the_embedded_server_runs_one_on_sqlite_only(
    tmp_path: Path, fresh_database_url: str
) -> None:
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    runtime = build_runtime(make_settings(tmp_path, fresh_database_url), db=engine)
    try:
        with TestClient(create_app(runtime, background=True)):
            running = _checkpointer_threads()
            assert len(running) == (1 if engine.dialect.name == "sqlite" else 0)
        assert _checkpointer_threads() == []  # stopped with the server
    finally:
        engine.dispose()
