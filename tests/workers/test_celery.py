"""The distributed path with real processes: `runhq worker` (Celery on Redis), a real
scheduler process, SIGKILL, and a broker outage. Nothing lost, nothing run twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from runhq.auth.models import User
from runhq.auth.schemas import Actor
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.logs.models import StructuredLog
from runhq.registry.service import get_registry
from runhq.runs import service as runs
from runhq.runs.models import TERMINAL_STATUSES, Run, RunStatus
from runhq.workers.celery import CeleryExecutor
from tests.conftest import PASSWORD, Team, make_settings, make_team, service_unavailable
from tests.fakes.openai_server import FakeOpenAI

RUNHQ = str(Path(sys.executable).parent / "runhq")
REDIS_DB = 11  # the tests' own Redis database, flushed before each test

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    env: dict[str, str]
    db: Engine
    sessions: sessionmaker[Session]
    actor: Actor
    team: Team
    logs: Path
    procs: list[subprocess.Popen[bytes]]

    def start(self, *args: str, name: str, **env: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [RUNHQ, *args],
            env={**self.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def create(
        self, n: int, *, run_type: str = "SEO_AUDIT", executor: CeleryExecutor | None = None
    ) -> list[uuid.UUID]:
        ids = []
        registry = get_registry()
        with transaction(self.sessions) as session:
            for i in range(n):
                run, _ = runs.create_run(
                    session,
                    self.actor,
                    registry,
                    run_type=run_type,
                    platform_key=f"p{i:03d}-{uuid.uuid4().hex[:4]}",
                    notify=executor.notify if executor else None,
                )
                ids.append(run.id)
        return ids

    def statuses(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        with self.sessions() as session:
            rows = session.execute(select(Run.id, Run.status).where(Run.id.in_(ids))).all()
        return {row.id: row.status for row in rows}

    def wait(
        self,
        ids: list[uuid.UUID],
        done: Callable[[dict[uuid.UUID, str]], bool],
        timeout: float = 90,
    ) -> dict[uuid.UUID, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.statuses(ids)
            if done(statuses):
                return statuses
            time.sleep(0.2)
        logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))
        pytest.fail(f"timed out; statuses: {sorted(self.statuses(ids).values())}\n{logs}")

    def events(self, run_id: uuid.UUID) -> list[str]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(StructuredLog.message)
                    .where(StructuredLog.run_id == run_id)
                    .order_by(StructuredLog.created_at)
                )
            )


def _terminal(statuses: dict[uuid.UUID, str]) -> bool:
    return all(RunStatus(s) in TERMINAL_STATUSES for s in statuses.values())


def _redis_ok(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_unavailable("Redis", str(exc))


@pytest.fixture
def cluster(tmp_path: Path, fresh_database_url: str) -> Iterator[Cluster]:
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    _redis_ok(broker)
    redis.Redis.from_url(broker).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNHQ_")}
    env.update(
        RUNHQ_DATA_DIR=str(tmp_path / "data"),
        RUNHQ_DATABASE_URL=fresh_database_url,
        RUNHQ_SECRET_KEY="cluster-secret-" + "x" * 32,
        RUNHQ_EXECUTOR="celery",
        RUNHQ_BROKER_URL=broker,
        RUNHQ_HEARTBEAT_SECONDS="0.5",
        RUNHQ_HEARTBEAT_TIMEOUT_SECONDS="4",
        RUNHQ_BROKER_VISIBILITY_TIMEOUT_SECONDS="10",
        RUNHQ_SCHEDULER_TICK_SECONDS="0.5",
        RUNHQ_SCHEDULER_LEASE_SECONDS="3",
        RUNHQ_REDISPATCH_AFTER_SECONDS="5",
    )
    db = build_engine(fresh_database_url)
    upgrade(db)
    sessions = make_session_factory(db)
    with transaction(sessions) as session:
        team = make_team(session)
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Cluster(
        env=env, db=db, sessions=sessions, actor=team.operator, team=team, logs=logs, procs=[]
    )
    yield c
    for proc in c.procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    db.dispose()


def _executor(cluster: Cluster, tmp_path: Path, broker: str | None = None) -> CeleryExecutor:
    settings = make_settings(
        tmp_path,
        cluster.env["RUNHQ_DATABASE_URL"],
        executor="celery",
        broker_url=broker or cluster.env["RUNHQ_BROKER_URL"],
    )
    executor = CeleryExecutor(settings, cluster.sessions)
    executor.start()
    return executor


def test_worker_executes_50_runs_then_survives_sigkill(cluster: Cluster, tmp_path: Path) -> None:
    executor = _executor(cluster, tmp_path)
    worker = cluster.start("worker", "--concurrency", "2", name="worker1")
    # The deployment: workers plus one scheduler (which re-sends what the broker lost).
    cluster.start("scheduler", name="scheduler")
    ids = cluster.create(50, executor=executor)
    statuses = cluster.wait(ids, _terminal)
    assert set(statuses.values()) == {"completed"}
    for run_id in ids[:5]:
        assert cluster.events(run_id).count("run.started") == 1

    # Now a slow model, a run in flight, and SIGKILL.
    with FakeOpenAI(models=("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-flash")) as fake:
        fake.responder = _slow_responder(fake, seconds=3)
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        slow_env = {
            "RUNHQ_LLM_BASE_URL": fake.base_url,
            "RUNHQ_LLM_API_KEY": fake.api_key,
            "RUNHQ_LLM_TIMEOUT_SECONDS": "30",
        }
        worker = cluster.start("worker", "--concurrency", "2", name="worker2", **slow_env)
        batch = cluster.create(6, executor=executor)
        cluster.wait(batch, lambda s: "running" in s.values())
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        in_flight = [i for i, s in cluster.statuses(batch).items() if s == "running"]
        assert in_flight
        cluster.start("worker", "--concurrency", "2", name="worker3", **slow_env)
        final = cluster.wait(batch, _terminal, timeout=120)
    executor.stop()
    for run_id in batch:
        events = cluster.events(run_id)
        assert events.count("run.started") == 1, events
        assert sum(e in ("run.completed", "run.failed", "run.cancelled") for e in events) == 1
    for run_id in in_flight:
        assert final[run_id] == "failed"
        assert "run.reaped" in cluster.events(run_id)
        with cluster.sessions() as session:
            run = session.get(Run, run_id)
            assert run is not None
            assert "worker lost" in (run.error or "")
    assert all(final[i] == "completed" for i in batch if i not in in_flight)
    with cluster.sessions() as session:
        assert session.scalar(select(func.count(Run.id))) == 56


def _slow_responder(fake: FakeOpenAI, seconds: float) -> Callable[[dict[str, object]], str]:
    from tests.fakes.openai_server import default_responder

    def respond(body: dict[str, object]) -> str:
        time.sleep(seconds)
        return default_responder(body)

    return respond


def test_broker_outage_at_creation_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server binary", "not installed")
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    env = {"RUNHQ_BROKER_URL": broker}
    api_port = _free_port()
    serve = cluster.start("serve", "--port", str(api_port), name="serve", **env)
    base = f"http://127.0.0.1:{api_port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    headers = _login(base, cluster)
    r = httpx.post(
        f"{base}/api/v1/runs",
        json={"run_type": "DAILY_EXECUTIVE_BRIEF"},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "queued"
    run_id = uuid.UUID(r.json()["id"])
    time.sleep(1.0)
    with cluster.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert run.dispatched_at is None  # the broker never accepted it
    # The broker comes back; a worker and the scheduler (which re-sends) start.
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cluster.start("worker", "--concurrency", "1", name="worker", **env)
        cluster.start("scheduler", name="scheduler", **env)
        final = cluster.wait([run_id], _terminal)
        assert final[run_id] == "completed"
        assert cluster.events(run_id).count("run.started") == 1
    finally:
        server.terminate()
        server.wait(10)
        os.killpg(serve.pid, signal.SIGTERM)


def _login(base: str, cluster: Cluster) -> dict[str, str]:
    with cluster.sessions() as session:
        user = session.get(User, cluster.actor.user_id)
        assert user is not None
        email = user.email
    r = httpx.post(
        f"{base}/api/v1/auth/token", data={"username": email, "password": PASSWORD}, timeout=10
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_json_report_of_a_scheduler_tick(cluster: Cluster) -> None:
    proc = subprocess.run(
        [RUNHQ, "scheduler", "--once"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["leader"] is True


def test_rabbitmq_broker_works_too(cluster: Cluster, tmp_path: Path) -> None:
    broker = os.environ.get("RUNHQ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            pass
    except OSError as exc:
        service_unavailable("RabbitMQ", str(exc))
    import kombu

    with kombu.Connection(broker) as conn:  # a clean queue: no task left from another run
        conn.SimpleQueue("runhq").clear()
    executor = _executor(cluster, tmp_path, broker=broker)
    cluster.start("worker", "--concurrency", "2", name="worker-amqp", RUNHQ_BROKER_URL=broker)
    ids = cluster.create(10, executor=executor)
    final = cluster.wait(ids, _terminal)
    executor.stop()
    assert set(final.values()) == {"completed"}


def test_readiness_reports_the_broker(tmp_path: Path, database_url: str) -> None:
    from fastapi.testclient import TestClient

    from runhq.web.app import create_app
    from tests.conftest import make_runtime

    db = build_engine(database_url)
    for broker, expected in (
        (f"redis://127.0.0.1:6379/{REDIS_DB}", 200),
        (f"redis://127.0.0.1:{_free_port()}/0", 503),
    ):
        settings = make_settings(tmp_path, database_url, executor="celery", broker_url=broker)
        runtime = make_runtime(settings, make_session_factory(db), db)
        with TestClient(create_app(runtime, background=False)) as client:
            r = client.get("/health/ready")
        assert r.status_code == expected, r.text
        assert r.json()["broker"] == ("up" if expected == 200 else "down")
    db.dispose()


def test_a_burst_is_published_as_one_batch(cluster: Cluster, tmp_path: Path) -> None:
    registry = get_registry()
    with transaction(cluster.sessions) as session:
        ids = [
            runs.create_run(
                session, cluster.actor, registry, run_type="SEO_AUDIT", platform_key=f"p{i}"
            )[0].id
            for i in range(5)
        ]
    settings = make_settings(
        tmp_path,
        cluster.env["RUNHQ_DATABASE_URL"],
        executor="celery",
        broker_url=cluster.env["RUNHQ_BROKER_URL"],
    )
    executor = CeleryExecutor(settings, cluster.sessions)  # not started yet
    batches: list[int] = []
    dispatch = executor.dispatch

    def counting(run_ids: list[uuid.UUID]) -> int:
        batches.append(len(run_ids))
        return dispatch(run_ids)

    executor.dispatch = counting  # type: ignore[method-assign]
    for run_id in ids:
        executor.notify(run_id)  # queued before the publisher starts: one burst
    executor.start()
    executor.stop()
    assert batches == [5]
    with cluster.sessions() as session:
        dispatched = session.scalars(select(Run.dispatched_at).where(Run.id.in_(ids))).all()
    assert len(dispatched) == 5
    assert all(at is not None for at in dispatched)
    queued = redis.Redis.from_url(cluster.env["RUNHQ_BROKER_URL"]).llen("runhq")
    assert queued == 5
