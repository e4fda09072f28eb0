"""The baselines for bench.celery_throughput, on the same broker and worker settings as
runhq's: a bare Celery app whose ``noop`` task does nothing but count itself, and whose
``durable`` task does the least a run persisted in a database must: claim its row (a
compare-and-set ``queued → running``) and record its outcome, each committed, with bare
statements in autocommit (the creating side inserts the row, committed, before publishing);
``durable_psycopg`` does the same on a bare psycopg connection, without SQLAlchemy."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import redis
from celery import Celery
from sqlalchemy import Column, Engine, MetaData, String, Table, Uuid, bindparam, update

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")
COUNTER = "bench:noop:done"
LAST_DONE = "bench:noop:last_done"  # time.time() when the latest task finished

app = Celery("bench_noop", broker=BROKER)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue="bench-noop",
    broker_connection_retry_on_startup=True,
)
_redis = redis.Redis.from_url(BROKER)

# The durable baseline's table: an id and a status, nothing else.
DURABLE = Table(
    "bench_durable",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("status", String(20)),
)
_MOVE = (
    update(DURABLE)
    .where(DURABLE.c.id == bindparam("row_id"), DURABLE.c.status == bindparam("current"))
    .values(status=bindparam("target"))
)


class _Db:
    engine: Engine | None = None
    driver: Any = None  # a bare psycopg connection, for ``durable_psycopg``


def _engine() -> Engine:
    # Built in each worker process after the fork, with runhq's engine settings.
    if _Db.engine is None:
        from runhq.db.session import build_engine

        # Autocommit: each statement commits alone, no BEGIN or COMMIT round trip.
        engine = build_engine(os.environ["BENCH_DATABASE_URL"])
        _Db.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return _Db.engine


def _count() -> None:
    # One round trip, as a bare INCR: the benchmark reads when the last task ended instead of
    # polling fast (which would take CPU from the workers on a small machine).
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(COUNTER)
    pipe.set(LAST_DONE, repr(time.time()))
    pipe.execute()


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    _count()


def _driver() -> Any:
    if _Db.driver is None:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(os.environ["BENCH_DATABASE_URL"]).set(drivername="postgresql")
        _Db.driver = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
    return _Db.driver


@app.task(name="bench.durable_psycopg")  # type: ignore[untyped-decorator]
def durable_psycopg(row_id: str) -> Any:
    """``durable`` without SQLAlchemy: the same two statements on a bare psycopg connection."""
    conn = _driver()
    for current, target in (("queued", "running"), ("running", "completed")):
        conn.execute(
            "UPDATE bench_durable SET status = %s WHERE id = %s AND status = %s",
            (target, row_id, current),
        )
    _count()


@app.task(name="bench.durable")  # type: ignore[untyped-decorator]
def durable(row_id: str) -> Any:
    engine = _engine()
    for current, target in (("queued", "running"), ("running", "completed")):
        with engine.connect() as conn:
            conn.execute(_MOVE, {"row_id": uuid.UUID(row_id), "current": current, "target": target})
    _count()
