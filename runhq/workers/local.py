"""The local executor: a thread pool in the server process, fed from the database.

The database is the queue: a dispatcher thread picks queued runs (woken at once by
``notify`` after a commit, and every ``poll_seconds`` for runs created elsewhere, e.g. by
the CLI), and the engine's compare-and-set claim makes a double pick harmless.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from runhq.runs import service as runs
from runhq.runs.engine import Engine

logger = logging.getLogger(__name__)


class LocalExecutor:
    def __init__(
        self,
        engine: Engine,
        session_factory: sessionmaker[Session],
        *,
        threads: int = 4,
        poll_seconds: float = 1.0,
    ) -> None:
        self.engine = engine
        self.sessions = session_factory
        self.threads = threads
        self.poll_seconds = poll_seconds
        self._pool: ThreadPoolExecutor | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="runhq-run")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="runhq-dispatch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def notify(self, run_id: uuid.UUID) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch()
            except Exception:  # the loop must survive a database hiccup
                logger.exception("dispatcher iteration failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _dispatch(self) -> None:
        with self._lock:
            free = self.threads - len(self._inflight)
        if free <= 0 or self._pool is None:
            return
        session = self.sessions()
        try:
            queued = runs.list_queued_ids(session, limit=self.threads * 2)
        finally:
            session.close()
        for run_id in queued:
            with self._lock:
                if run_id in self._inflight or len(self._inflight) >= self.threads:
                    continue
                self._inflight.add(run_id)
            self._pool.submit(self._run, run_id)

    def _run(self, run_id: uuid.UUID) -> None:
        try:
            self.engine.execute(run_id)
        except Exception:
            logger.exception("executing run %s failed", run_id)
        finally:
            with self._lock:
                self._inflight.discard(run_id)
            self._wake.set()  # a slot is free: look for more work
