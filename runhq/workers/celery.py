"""The Celery executor: runs execute in ``runhq worker`` processes fed through a broker.

Publishing follows the transactional outbox: a run is committed ``queued`` first, then its
task is sent (off the request thread) and ``dispatched_at`` recorded. A run the broker did
not accept keeps ``dispatched_at`` NULL and the scheduler's dispatcher sends it again, so a
broker outage at creation loses nothing. Tasks carry only the run id and are acknowledged
late; the engine's compare-and-set claim makes a redelivered or duplicated task harmless.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from runhq.config import Settings, get_settings
from runhq.db.session import self_contained_writes
from runhq.runs import service as runs

logger = logging.getLogger(__name__)

TASK_NAME = "runhq.execute_run"
QUEUE = "runhq"
_PUBLISH_BATCH = 500

celery_app = Celery("runhq")


def configure_celery(app: Celery, settings: Settings) -> Celery:
    app.conf.update(
        broker_url=settings.broker_url,
        task_default_queue=QUEUE,
        task_acks_late=True,  # a task is acknowledged once the run is finished
        task_reject_on_worker_lost=True,  # a killed child's task goes back to the queue
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            "max_retries": 1,
        },
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def check_broker(settings: Settings) -> None:
    """Raise if the broker does not answer (readiness probe)."""
    app = configure_celery(Celery("runhq-health"), settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    finally:
        app.close()


class _WorkerState:
    runtime: Any = None


def _worker_runtime() -> Any:
    # Built lazily in each worker process (after the fork): no connection crosses processes.
    if _WorkerState.runtime is None:
        from runhq.runtime import build_runtime

        _WorkerState.runtime = build_runtime(get_settings())
    return _WorkerState.runtime


@celery_app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def execute_run(run_id: str) -> str | None:
    """Execute one run if it is still queued (a duplicate delivery finds it claimed)."""
    status = _worker_runtime().engine.execute(uuid.UUID(run_id))
    return status.value if status is not None else None


def publish_runs(app: Celery, run_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Send one task per run; returns the ids the broker accepted (no retry loop here)."""
    accepted: list[uuid.UUID] = []
    for run_id in run_ids:
        try:
            app.send_task(TASK_NAME, args=[str(run_id)], queue=QUEUE, retry=False)
        except Exception as exc:  # broker down: the outbox keeps the run for the dispatcher
            logger.warning(
                "broker refused run %s (%s); it will be re-sent", run_id, type(exc).__name__
            )
            break
        accepted.append(run_id)
    return accepted


class CeleryExecutor:
    """The server/scheduler side: publishes queued runs; workers execute them."""

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        # Its own app (publishing is by task name): no broker connection is shared with
        # another executor or a worker configured differently in the same process.
        self.app = configure_celery(Celery("runhq-publisher"), settings)
        self.sessions = session_factory
        bind = session_factory.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("CeleryExecutor needs sessions bound to an engine")
        self._engine = bind
        self._queue: queue.Queue[uuid.UUID | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._publisher, name="runhq-publish", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        self.app.close()

    def notify(self, run_id: uuid.UUID) -> None:
        self._queue.put(run_id)  # never blocks the request on the broker

    def _publisher(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            # Whatever else is waiting goes in the same batch: one bookkeeping transaction
            # for a burst of runs instead of one each.
            batch, stop = [run_id], False
            while len(batch) < _PUBLISH_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self.dispatch(batch)
            if stop:
                return

    def dispatch(self, run_ids: list[uuid.UUID]) -> int:
        """Publish and record what the broker accepted; returns how many."""
        accepted = publish_runs(self.app, run_ids)
        if accepted:
            try:
                with self_contained_writes(self._engine) as conn:
                    runs.mark_dispatched(conn, accepted)
            except Exception:  # the tasks are out; a re-send later would be a no-op duplicate
                logger.exception("could not record dispatch of %d runs", len(accepted))
        return len(accepted)
