"""Two real `runhq scheduler` processes on one database: one leads, none doubles work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.clock import FrozenClock
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.registry.service import get_registry
from runhq.runs.models import Run
from runhq.scheduler import service
from runhq.scheduler.models import SchedulerLease
from tests.conftest import Team, make_team

RUNHQ = str(Path(sys.executable).parent / "runhq")
LEASE_SECONDS = 3.0
TICK_SECONDS = 0.3

pytestmark = pytest.mark.slow


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _schedules(sessions: sessionmaker[Session], team: Team, keys: range) -> None:
    registry = get_registry()
    with FrozenClock(clock.now() - timedelta(hours=1)), transaction(sessions) as session:
        for i in keys:  # created an hour ago: each has a firing due now
            service.create_schedule(
                session,
                team.admin,
                registry,
                job_key=f"job-{i:03d}",
                run_type="SEO_AUDIT",
                platform_key=f"p{i:03d}",
                cron="*/5 * * * *",
                timezone="UTC",
            )


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Run.id))) or 0


def _holder(sessions: sessionmaker[Session]) -> str | None:
    with sessions() as session:
        lease = session.get(SchedulerLease, "scheduler")
        if lease is None or lease.expires_at <= clock.now():
            return None
        return lease.holder


def test_two_schedulers_fire_100_jobs_once_and_fail_over(
    db: sessionmaker[Session], fresh_database_url: str, tmp_path: Path
) -> None:
    with transaction(db) as session:
        team = make_team(session)
    _schedules(db, team, range(100))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNHQ_")}
    env.update(
        RUNHQ_DATABASE_URL=fresh_database_url,
        RUNHQ_DATA_DIR=str(tmp_path),
        RUNHQ_SECRET_KEY="s" * 40,
        RUNHQ_SCHEDULER_TICK_SECONDS=str(TICK_SECONDS),
        RUNHQ_SCHEDULER_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    procs = [
        subprocess.Popen(
            [RUNHQ, "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"s{i}.log").open("wb"),
            start_new_session=True,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while _count(db) < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3 * TICK_SECONDS)  # both keep ticking: nothing more may appear
        assert _count(db) == 100
        holder = _holder(db)
        assert holder is not None
        leader = next(p for p in procs if f":{p.pid}:" in holder)
        follower = next(p for p in procs if p is not leader)

        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(10)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < LEASE_SECONDS + 5:
            new = _holder(db)
            if new is not None and new != holder:
                break
            time.sleep(0.05)
        took_over_after = time.monotonic() - killed_at
        assert new is not None
        assert f":{follower.pid}:" in new
        # Within one lease period (plus one tick for the follower to look).
        assert took_over_after <= LEASE_SECONDS + TICK_SECONDS + 1.0

        _schedules(db, team, range(100, 110))  # new due work is picked up by the new leader
        deadline = time.monotonic() + 30
        while _count(db) < 110 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _count(db) == 110
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
