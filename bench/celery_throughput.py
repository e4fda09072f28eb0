"""Runs/s through Celery beside raw Celery no-op tasks, and queue-to-start latency.

Same machine, same broker (Redis), same worker concurrency and pool, one process run:
1. raw: N no-op tasks through a bare Celery app (bench.celery_noop) — the broker's floor;
2. runhq: N runs of DAILY_EXECUTIVE_BRIEF (offline provider = a zero-latency model) created
   through the service, published after commit, executed by `runhq worker`, on PostgreSQL —
   twice: *orchestration* (the run type's only fact source is Stripe, not configured here,
   so it is reported unavailable without a query: what remains is the claim, the prompt, the
   output, every transition and log line), then *with facts* (its six context providers,
   five of which read the workspace's history);
3. CPU: every process's CPU time during each measure, read from /proc, per task or run and
   by kind of process (workers, PostgreSQL, Redis, the benchmark itself);
4. latency: runs created one at a time on an idle system; started_at - created_at, p50/p99,
   for the local executor (embedded) and Celery. The scheduler adds up to one tick
   (RUNHQ_SCHEDULER_TICK_SECONDS) before a due firing becomes a queued run.

    .venv/bin/python -m bench.celery_throughput [--runs 200] [--latency-samples 50]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.config import Settings
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.registry.service import get_registry
from runhq.runs import service as runs
from runhq.runs.engine import Engine as RunEngine
from runhq.runs.models import Run
from runhq.workers.celery import CeleryExecutor
from runhq.workers.local import LocalExecutor

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BROKER = "redis://127.0.0.1:6379/12"
BIN = Path(sys.executable).parent
CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "2")
RAW_CPU: dict[str, float] = {}  # CPU ms per raw no-op task, by kind of process
DURABLE_CPU: dict[str, float] = {}  # CPU ms per durable baseline task
DURABLE_PSYCOPG_CPU: dict[str, float] = {}  # the same, without SQLAlchemy


# Completion is read from when the last task or run finished (a timestamp each side records),
# so the waiting loop can poll slowly: a fast poll would take CPU from the workers on a
# small machine, and more from runhq's side (a PostgreSQL query) than the raw side (a GET).
_POLL_SECONDS = 0.1


def _cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) of every process on this machine so far, by kind: runhq's
    workers, the raw no-op workers, PostgreSQL, Redis, this benchmark; empty without /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    kinds: dict[str, float] = {}
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        if int(pid) == os.getpid():
            kind = "benchmark (creates and publishes)"
        elif "runhq worker" in cmd:
            kind = "runhq workers"
        elif "bench.celery_noop" in cmd:
            kind = "bare Celery workers (baselines)"
        elif "postgres" in cmd or "postgres" in stat:
            kind = "postgresql"
        elif "redis" in cmd or "redis" in stat:
            kind = "redis"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0.0) + cpu
    return kinds


def _cpu_per_item(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """Milliseconds of CPU per task or run, by kind of process, between two snapshots."""
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    per = {k: round(v / n * 1000, 2) for k, v in sorted(spent.items()) if v > 0}
    per["total"] = round(sum(v for v in spent.values() if v > 0) / n * 1000, 2)
    return per


_WARM_UP = 10  # tasks or runs before each measure


def _wait_procs_ready(seconds: float = 4.0) -> None:
    time.sleep(seconds)  # worker boot; excluded from the timings


def raw_celery(n: int, *, durable: str | None = None) -> float:
    """Seconds for n tasks of the bare app (bench.celery_noop): no-ops, or with ``durable``
    the least a database-backed run needs (the row inserted, committed, before its task is
    published; the task claims it and records its outcome, each committed on its own, in
    autocommit: the cheapest form of each), through SQLAlchemy (``"sqlalchemy"``) or a bare
    psycopg connection (``"psycopg"``)."""
    r = redis.Redis.from_url(BROKER)
    r.flushdb()
    env = {**os.environ, "BENCH_BROKER_URL": BROKER}
    db: Engine | None = None
    autocommit: Engine | None = None
    url = admin = None
    if durable is not None:
        url, admin = _database()
        env["BENCH_DATABASE_URL"] = url
        db = build_engine(url)
        from bench.celery_noop import DURABLE

        DURABLE.create(db)
        autocommit = db.execution_options(isolation_level="AUTOCOMMIT")
    proc = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "bench.celery_noop",
            "worker",
            "-Q",
            "bench-noop",
            "--concurrency",
            CONCURRENCY,
            "--pool",
            "prefork",
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_procs_ready()
        from bench.celery_noop import COUNTER, DURABLE, LAST_DONE, durable_psycopg, noop
        from bench.celery_noop import durable as durable_task

        task = durable_psycopg if durable == "psycopg" else durable_task

        def send(count: int) -> None:
            for _ in range(count):
                if autocommit is None:
                    noop.delay()
                    continue
                row_id = uuid.uuid4()
                with autocommit.connect() as conn:
                    conn.execute(DURABLE.insert().values(id=row_id, status="queued"))
                task.delay(str(row_id))

        def wait_for(count: int) -> None:
            while int(r.get(COUNTER) or 0) < count:
                time.sleep(_POLL_SECONDS)

        # Warm-up, as runhq's side: each worker process's first tasks (imports, the
        # database engine built after the fork) are not what is measured.
        send(_WARM_UP)
        wait_for(_WARM_UP)
        time.sleep(2)
        cpu_before = _cpu_seconds()
        start = time.time()
        send(n)
        wait_for(_WARM_UP + n)
        cpu = {None: RAW_CPU, "sqlalchemy": DURABLE_CPU, "psycopg": DURABLE_PSYCOPG_CPU}
        cpu[durable].update(_cpu_per_item(cpu_before, _cpu_seconds(), n))
        return float(r.get(LAST_DONE) or 0) - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        if db is not None and url is not None:
            db.dispose()
            _drop(admin, url)


def _database() -> tuple[str, Any]:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"runhq_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), admin


def _create(sessions: Any, actor: Actor, n: int, notify: Any) -> list[uuid.UUID]:
    """n runs, each created in its own transaction as ``POST /api/v1/runs`` does: each is
    published once committed, so the workers start while the next ones are created (as the
    raw side's workers do while ``delay()`` is still being called)."""
    registry = get_registry()
    ids = []
    for _ in range(n):
        with transaction(sessions) as session:
            run, _ = runs.create_run(
                session,
                actor,
                registry,
                run_type=RUN_TYPE,
                platform_key=f"b-{uuid.uuid4().hex[:10]}",
                notify=notify,
            )
            ids.append(run.id)
    return ids


def _wait_done(sessions: Any, ids: list[uuid.UUID], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _done(sessions, ids) < len(ids):
        if time.monotonic() > deadline:
            with sessions() as session:
                states = session.scalars(select(Run.status).where(Run.id.in_(ids))).all()
            raise SystemExit(f"runs did not finish: {sorted(set(states))}")
        time.sleep(_POLL_SECONDS)


def _last_finished(sessions: Any, ids: list[uuid.UUID]) -> datetime:
    with sessions() as session:
        last = session.scalar(select(func.max(Run.finished_at)).where(Run.id.in_(ids)))
    assert last is not None  # noqa: S101 - waited for above
    return cast(datetime, last)


def _done(sessions: Any, ids: list[uuid.UUID]) -> int:
    with sessions() as session:
        return len(
            session.scalars(
                select(Run.id).where(Run.id.in_(ids), Run.status.in_(["completed", "failed"]))
            ).all()
        )


def _latencies(sessions: Any, ids: list[uuid.UUID]) -> list[float]:
    with sessions() as session:
        rows = session.execute(select(Run.created_at, Run.started_at).where(Run.id.in_(ids)))
        return [(s - c).total_seconds() * 1000 for c, s in rows if s is not None]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


RUN_TYPE = "DAILY_EXECUTIVE_BRIEF"


def _registry_without_facts(tmp: Path) -> Path:
    """A copy of the shipped registry where the benchmarked run type's only source is an
    unconfigured connector (a run type needs at least one)."""
    shipped = Path(get_registry().source)
    text_ = shipped.read_text(encoding="utf-8")
    header = f"[run_types.{RUN_TYPE}]\n"
    start = text_.index(header)
    line_start = text_.index("\ncontext = [", start) + 1
    line_end = text_.index("\n", line_start)
    path = tmp / "run_types_no_facts.toml"
    only_stripe = text_[:line_start] + 'context = ["stripe"]' + text_[line_end:]
    path.write_text(only_stripe, encoding="utf-8")
    return path


def runhq_bench(n: int, samples: int, tmp: Path, *, facts: bool) -> dict[str, Any]:
    url, admin = _database()
    db = build_engine(url)
    upgrade(db)
    sessions = make_session_factory(db)
    with transaction(sessions) as session:
        ws = auth.create_workspace(session, name="bench")
        user = auth.create_user(
            session,
            email="bench@example.com",
            password="bench-password",
            workspace_id=ws.id,
            role=Role.owner,
        )
        actor = Actor(user_id=user.id, workspace_id=ws.id, role=Role.owner)
    settings = Settings(
        _env_file=None,
        data_dir=tmp,
        database_url=url,  # type: ignore[call-arg]
        secret_key="b" * 40,
        executor="celery",
        broker_url=BROKER,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNHQ_")}
    env.update(
        RUNHQ_DATABASE_URL=url,
        RUNHQ_DATA_DIR=str(tmp),
        RUNHQ_SECRET_KEY="b" * 40,
        RUNHQ_EXECUTOR="celery",
        RUNHQ_BROKER_URL=BROKER,
    )
    if not facts:
        env["RUNHQ_REGISTRY_PATH"] = str(_registry_without_facts(tmp))
    redis.Redis.from_url(BROKER).flushdb()
    worker = subprocess.Popen(
        [str(BIN / "runhq"), "worker", "--concurrency", CONCURRENCY, "--loglevel", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "worker.log").open("wb"),
        start_new_session=True,
    )
    executor = CeleryExecutor(settings, sessions)
    executor.start()
    result: dict[str, Any] = {}
    try:
        _wait_procs_ready()
        _ = _create(sessions, actor, _WARM_UP, executor.notify)  # warm-up
        time.sleep(2)
        cpu_before = _cpu_seconds()
        start = datetime.now(UTC)
        ids = _create(sessions, actor, n, executor.notify)
        _wait_done(sessions, ids)
        result["celery_seconds"] = (_last_finished(sessions, ids) - start).total_seconds()
        result["cpu_ms_per_run"] = _cpu_per_item(cpu_before, _cpu_seconds(), n)
        if not facts:
            return result
        one_by_one = []
        for _ in range(samples):
            one_by_one += _create(sessions, actor, 1, executor.notify)
            time.sleep(0.1)
        _wait_done(sessions, one_by_one)
        result["celery_latency_ms"] = _latencies(sessions, one_by_one)
    finally:
        executor.stop()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        if not facts:
            db.dispose()
            _drop(admin, url)
    local_settings = settings.model_copy(update={"executor": "local"})
    engine = RunEngine(sessions, local_settings, get_registry())
    local = LocalExecutor(engine, sessions, threads=int(CONCURRENCY))
    local.start()
    try:
        one_by_one = []
        for _ in range(samples):
            one_by_one += _create(sessions, actor, 1, local.notify)
            time.sleep(0.1)
        _wait_done(sessions, one_by_one)
        result["local_latency_ms"] = _latencies(sessions, one_by_one)
    finally:
        local.stop()
        db.dispose()
        _drop(admin, url)
    return result


def _drop(admin: Any, url: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=50)
    args = parser.parse_args()
    raw_s = raw_celery(args.runs)
    durable_s = raw_celery(args.runs, durable="sqlalchemy")
    psycopg_s = raw_celery(args.runs, durable="psycopg")
    with tempfile.TemporaryDirectory() as tmp:
        bare = runhq_bench(args.runs, args.latency_samples, Path(tmp), facts=False)
    with tempfile.TemporaryDirectory() as tmp:
        r = runhq_bench(args.runs, args.latency_samples, Path(tmp), facts=True)
    print(
        json.dumps(
            {
                "runs": args.runs,
                "concurrency": int(CONCURRENCY),
                "raw_celery_tasks_per_s": round(args.runs / raw_s, 1),
                "durable_floor_tasks_per_s": round(args.runs / durable_s, 1),
                "durable_floor_ratio": round(raw_s / durable_s, 2),
                "durable_psycopg_tasks_per_s": round(args.runs / psycopg_s, 1),
                "durable_psycopg_ratio": round(raw_s / psycopg_s, 2),
                "orchestration_runs_per_s": round(args.runs / bare["celery_seconds"], 1),
                "orchestration_ratio": round(raw_s / bare["celery_seconds"], 2),
                "orchestration_vs_durable_floor": round(durable_s / bare["celery_seconds"], 2),
                "with_facts_runs_per_s": round(args.runs / r["celery_seconds"], 1),
                "with_facts_ratio": round(raw_s / r["celery_seconds"], 2),
                # Read from /proc during each measure (includes the 100 ms polling loop).
                "cpu_ms_per_raw_task": RAW_CPU,
                "cpu_ms_per_durable_floor_task": DURABLE_CPU,
                "cpu_ms_per_durable_psycopg_task": DURABLE_PSYCOPG_CPU,
                "cpu_ms_per_run_orchestration": bare["cpu_ms_per_run"],
                "cpu_ms_per_run_with_facts": r["cpu_ms_per_run"],
                "goal": "ratio >= 0.5",
                "queue_to_start_ms": {
                    "local": {
                        "p50": _pct(r["local_latency_ms"], 0.5),
                        "p99": _pct(r["local_latency_ms"], 0.99),
                        "mean": round(statistics.fmean(r["local_latency_ms"]), 1),
                    },
                    "celery": {
                        "p50": _pct(r["celery_latency_ms"], 0.5),
                        "p99": _pct(r["celery_latency_ms"], 0.99),
                        "mean": round(statistics.fmean(r["celery_latency_ms"]), 1),
                    },
                },
            }
        )
    )


if __name__ == "__main__":
    main()
