"""SQLite WAL checkpoints on a background thread, off the commit path.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back
into the database file and is the only step that waits for the disk (two ``fsync`` with
``synchronous=NORMAL``). Left to SQLite, it runs inside whichever commit takes the WAL past
``wal_autocheckpoint`` pages: that commit — a request, a run's transition — stalls for the
whole copy (10–20 ms on this project's machine, every ~90 runs; docs/benchmarks.md).

A long-lived process (the embedded server, the scheduler) instead runs a ``WalCheckpointer``:
a daemon thread with its own connection that, every ``interval`` seconds, runs a PASSIVE
checkpoint if another connection committed since its last look (``PRAGMA data_version``).
Python's ``sqlite3`` releases the GIL while SQLite works, so the copy and its ``fsync``
overlap the writers' work instead of interrupting it. PASSIVE never blocks writers or
readers; a writer that finds the WAL fully copied starts it again from the beginning, so
the file stops growing.

The connections' own ``wal_autocheckpoint`` stays set (``runhq.db.session``) as a backstop:
if the thread lags behind a burst, or is not running (a one-off CLI command), commits
checkpoint as before. See docs/adr/0019-background-wal-checkpoints.md.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

logger = logging.getLogger(__name__)

# Seconds between looks at the database. At ~900 runs/s (40-odd WAL pages each) that is
# ~7 000 pages, a copy of under 30 MB per pass: under the commits' own backstop
# (``SQLITE_CHECKPOINT_PAGES``), so they do not checkpoint while the thread keeps up.
CHECKPOINT_INTERVAL_SECONDS = 0.2


@dataclass(frozen=True)
class CheckpointResult:
    """One PASSIVE checkpoint, as ``PRAGMA wal_checkpoint`` reports it."""

    busy: bool  # another connection was checkpointing (another process's checkpointer)
    wal_frames: int  # pages in the WAL
    copied_frames: int  # of which copied into the database, this pass or before


class WalCheckpointer:
    """A daemon thread that checkpoints one SQLite database's WAL (see the module doc)."""

    def __init__(self, path: Path, *, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.path = path
        self.interval = interval
        self.passes = 0  # checkpoints run (for tests and diagnostics)
        self.failures = 0  # looks that failed (the database missing, unreadable...)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._seen_version: int | None = None
        self._last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, daemon=True, name="runhq-wal-checkpointer"
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current pass (the backstop takes over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Still in a pass (waiting on a lock): it ends after it and closes its own
                # connection; it stays ours, so start() cannot run a second one meanwhile.
                logger.warning("WAL checkpointer of %s still busy after %ss", self.path, timeout)
                return
            self._thread = None
        if self._connection is not None:  # looks taken on the caller's thread
            self._connection.close()
            self._connection = None

    def checkpoint_if_changed(self) -> CheckpointResult | None:
        """One look: a PASSIVE checkpoint if another connection committed since the last
        look; None if nothing changed. Runs on the caller's thread (the loop's, or a test's)."""
        if self._connection is None:
            # Autocommit; waits for a writer's lock no longer than a commit would. Read-write
            # but never create: a missing database is an error to report, not a new file.
            self._connection = sqlite3.connect(
                f"{self.path.absolute().as_uri()}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=30,
            )
        version = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        if version == self._seen_version:
            return None
        busy, wal_frames, copied = self._connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
        self.passes += 1
        if not busy:  # else another checkpointer had it: look again next time
            self._seen_version = version
        return CheckpointResult(busy=bool(busy), wal_frames=wal_frames, copied_frames=copied)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.checkpoint_if_changed()
                except sqlite3.Error as error:
                    self.failures += 1
                    # Commits keep checkpointing on their own (the backstop): say so once
                    # per distinct error rather than on every pass.
                    if str(error) != self._last_error:
                        self._last_error = str(error)
                        logger.warning(
                            "background WAL checkpoint of %s failed (%s); commits "
                            "checkpoint on their own meanwhile",
                            self.path,
                            error,
                        )
                else:
                    self._last_error = None
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def start_wal_checkpointer(
    engine: Engine, *, interval: float = CHECKPOINT_INTERVAL_SECONDS
) -> WalCheckpointer | None:
    """A running checkpointer for ``engine``'s database if it is a SQLite file; else None
    (PostgreSQL checkpoints on its own; an in-memory database has no WAL)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    checkpointer = WalCheckpointer(Path(url.database), interval=interval)
    checkpointer.start()
    return checkpointer
