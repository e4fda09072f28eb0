"""The baseline for bench.celery_throughput: a bare Celery app whose task does nothing but
count itself, on the same broker and worker settings as runhq's."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

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


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    # One round trip, as a bare INCR: the benchmark reads when the last task ended instead of
    # polling fast (which would take CPU from the workers on a small machine).
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(COUNTER)
    pipe.set(LAST_DONE, repr(time.time()))
    pipe.execute()
