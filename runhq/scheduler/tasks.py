"""The scheduler loop: one leader (lease in the database) finds work on every tick.

On each tick the leader fires due schedules (or runs due autopilot cycles), and on their own
intervals the housekeeping jobs: the stuck-run reaper, the outbox re-dispatch (Celery) and
the log purge. Other scheduler processes only try to take the lease; a dead leader's lease
expires and the next tick of another process takes over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth import service as auth
from runhq.db.session import transaction
from runhq.errors import LeaseLost
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.platforms import service as platforms
from runhq.platforms.tasks import run_due_checks
from runhq.runs import service as runs
from runhq.runtime import Runtime
from runhq.scheduler import autopilot
from runhq.scheduler.service import (
    acquire_lease,
    check_lease,
    fire_due_schedules,
    release_lease,
)

logger = logging.getLogger(__name__)

LEASE = "scheduler"
REAP_EVERY = timedelta(seconds=15)
PURGE_EVERY = timedelta(hours=6)


@dataclass
class TickReport:
    leader: bool
    token: int | None = None
    fired: int = 0
    cycles: int = 0
    checks: int = 0
    reaped: int = 0
    dispatched: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)


class Scheduler:
    def __init__(self, runtime: Runtime, holder: str | None = None) -> None:
        self.runtime = runtime
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._last_reap = clock.now() - REAP_EVERY
        self._last_purge = clock.now() - PURGE_EVERY
        self._stop = threading.Event()
        self._token = 0  # the fencing token of the lease this tick holds

    @property
    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.runtime.settings.scheduler_lease_seconds)

    def tick(self) -> TickReport:
        rt = self.runtime
        settings = rt.settings
        with transaction(rt.sessions) as session:
            token = acquire_lease(session, name=LEASE, holder=self.holder, ttl=self._ttl)
        if token is None:
            return TickReport(leader=False)
        report = TickReport(leader=True, token=token)
        self._token = token
        self._step(report, "schedules", self._fire_schedules)
        self._step(report, "autopilot", self._autopilot)
        self._step(report, "health", self._health)
        now = clock.now()
        if now - self._last_reap >= REAP_EVERY:
            self._last_reap = now
            self._step(report, "reaper", self._reap)
        if settings.executor == "celery":
            self._step(report, "dispatch", self._dispatch)
        if now - self._last_purge >= PURGE_EVERY:
            self._last_purge = now
            self._step(report, "purge", self._purge)
        return report

    @contextmanager
    def _fenced(self) -> Iterator[Session]:
        """A transaction for the leader's writes, refused if the lease changed hands since
        this tick took it (the fencing token is checked inside the transaction)."""
        with transaction(self.runtime.sessions) as session:
            check_lease(session, name=LEASE, holder=self.holder, token=self._token)
            yield session

    def _step(self, report: TickReport, name: str, fn: object) -> None:
        try:
            fn(report)  # type: ignore[operator]
        except LeaseLost as exc:  # replaced while this tick ran: stop writing, say so
            logger.warning("scheduler job %s refused: %s", name, exc.message)
            report.errors.append(f"{name}: lease lost")
        except Exception as exc:  # one failing job must not stop the others
            logger.exception("scheduler job %s failed", name)
            report.errors.append(f"{name}: {type(exc).__name__}")

    def _fire_schedules(self, report: TickReport) -> None:
        rt = self.runtime
        with self._fenced() as session:
            fired = fire_due_schedules(
                session,
                rt.registry,
                stuck_after=rt.stuck_after,
                tz=rt.settings.timezone,
                notify=rt.notify,
            )
        report.fired = sum(1 for f in fired if f.run_id is not None)

    def _autopilot(self, report: TickReport) -> None:
        rt = self.runtime
        with transaction(rt.sessions) as session:
            due = autopilot.list_due_cycles(session)
        for workspace_id in due:  # one workspace at a time: one failure stays local
            with transaction(rt.sessions) as session:
                cycle = autopilot.prepare_cycle(
                    session,
                    workspace_id,
                    tz=rt.settings.timezone,
                    default_interval=rt.settings.autopilot_interval_minutes,
                )
            if cycle is None:
                continue
            # No transaction is open during the model call (SQLite's write lock included).
            proposal = autopilot.propose_jobs(rt.gateway, rt.registry, cycle)
            with transaction(rt.sessions) as session:  # spent whoever leads now: not fenced
                autopilot.record_model_call(session, cycle, proposal)
            with self._fenced() as session:
                autopilot.apply_cycle(
                    session,
                    rt.registry,
                    cycle,
                    proposal,
                    stuck_after=rt.stuck_after,
                    tz=rt.settings.timezone,
                    default_interval=rt.settings.autopilot_interval_minutes,
                    notify=rt.notify,
                )
            report.cycles += 1

    def _health(self, report: TickReport) -> None:
        report.checks = run_due_checks(self.runtime.sessions)

    def _reap(self, report: TickReport) -> None:
        rt = self.runtime
        with self._fenced() as session:
            reaped = runs.reap_stuck_runs(
                session,
                rt.registry,
                heartbeat_timeout=timedelta(seconds=rt.settings.heartbeat_timeout_seconds),
            )
            for run, reason in reaped:
                logs.create_log(
                    session,
                    message="run.reaped",
                    level=LogLevel.warn,
                    source=LogSource.system,
                    workspace_id=run.workspace_id,
                    run_id=run.id,
                    metadata={"reason": reason, "run_type": run.run_type},
                )
        report.reaped = len(reaped)

    def _dispatch(self, report: TickReport) -> None:
        rt = self.runtime
        dispatch = getattr(rt.executor, "dispatch", None)
        if dispatch is None:
            return
        with transaction(rt.sessions) as session:
            pending = runs.list_undispatched(
                session,
                redispatch_after=timedelta(seconds=rt.settings.redispatch_after_seconds),
            )
        if pending:
            report.dispatched = int(dispatch(pending))

    def _purge(self, report: TickReport) -> None:
        rt = self.runtime
        with self._fenced() as session:
            report.purged, _ = logs.purge_logs(
                session, older_than_days=rt.settings.log_retention_days
            )
            # Failed logins name people's emails: kept a day (the throttle counts far less).
            window = timedelta(minutes=rt.settings.login_window_minutes)
            auth.purge_login_failures(session, older_than=max(window, timedelta(days=1)))
            auth.purge_ended_sessions(session)
            platforms.purge_checks(
                session, older_than=timedelta(days=rt.settings.health_check_retention_days)
            )

    def run_forever(self) -> None:
        """Tick until ``stop()``; gives the lease up on the way out."""
        interval = self.runtime.settings.scheduler_tick_seconds
        leading = False
        while not self._stop.is_set():
            try:
                report = self.tick()
                if report.leader != leading:
                    leading = report.leader
                    logger.info(
                        "scheduler %s is %s (token %s)",
                        self.holder,
                        "the leader" if leading else "standing by",
                        report.token,
                    )
            except Exception:
                logger.exception("scheduler tick failed")
            self._stop.wait(interval)
        try:
            self.release()
        except Exception:
            logger.warning("could not release the scheduler lease", exc_info=True)

    def stop(self) -> None:
        self._stop.set()

    def release(self) -> None:
        """Give the lease up now (it would otherwise expire after its period)."""
        with transaction(self.runtime.sessions) as session:
            release_lease(session, name=LEASE, holder=self.holder)
