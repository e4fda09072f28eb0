"""Schedules (the only writer of ``schedules``), the leader lease, and due firings.

The scheduler only finds work: a due firing becomes one queued run whose idempotency key
names the schedule and the firing instant, so two schedulers (or a restarted one) can never
create the same firing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.models import Role
from runhq.auth.schemas import Actor, system_actor
from runhq.auth.service import require_role
from runhq.errors import (
    AlreadyExists,
    BudgetExceeded,
    DuplicateRun,
    LeaseLost,
    NotFound,
    RunhqError,
)
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.service import Notifier
from runhq.scheduler.cron import check_cron, check_timezone, latest_firing, next_firings
from runhq.scheduler.models import AutopilotSettings, Schedule, SchedulerLease

# --- the leader lease --------------------------------------------------------------------


def acquire_lease(session: Session, *, name: str, holder: str, ttl: timedelta) -> int | None:
    """Take or renew the lease ``name``; returns its fencing token, or None if held by another.

    One compare-and-set UPDATE: whoever holds an unexpired lease keeps it; an expired lease
    goes to the first taker, with a new token.
    """
    now = clock.now()
    if session.get(SchedulerLease, name) is None:
        try:
            with session.begin_nested():
                session.add(
                    SchedulerLease(
                        name=name, holder=holder, token=1, expires_at=now + ttl, acquired_at=now
                    )
                )
            return 1
        except IntegrityError:
            pass  # another process created it first: compete below
    renewed = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            SchedulerLease.holder == holder,
            SchedulerLease.expires_at > now,
        )
        .values(expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if not renewed.rowcount:  # type: ignore[attr-defined]
        taken = session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.expires_at <= now)
            .values(
                holder=holder, token=SchedulerLease.token + 1, expires_at=now + ttl, acquired_at=now
            )
            .execution_options(synchronize_session=False)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            return None
    return session.scalar(select(SchedulerLease.token).where(SchedulerLease.name == name))


_HELD = select(SchedulerLease.name).where(
    SchedulerLease.name == bindparam("name"),
    SchedulerLease.holder == bindparam("holder"),
    SchedulerLease.token == bindparam("token"),
    SchedulerLease.expires_at > bindparam("now"),
)


def check_lease(session: Session, *, name: str, holder: str, token: int) -> None:
    """The fence: refuse (``LeaseLost``) unless ``holder`` still holds ``name`` with ``token``.

    Called first in each transaction a leader writes in, so a leader that paused past its
    lease (and was replaced) cannot write afterwards. On PostgreSQL the lease row is locked
    FOR SHARE until the transaction ends, so the lease cannot change hands in between; on
    SQLite the transaction already holds the database's write lock.
    """
    held = session.execute(
        _HELD.with_for_update(read=True)
        if session.get_bind().dialect.name == "postgresql"
        else _HELD,
        {"name": name, "holder": holder, "token": token, "now": clock.now()},
    ).first()
    if held is None:
        raise LeaseLost(
            f"the {name} lease is no longer held by {holder} with token {token}",
            details={"lease": name, "token": token},
        )


def release_lease(session: Session, *, name: str, holder: str) -> None:
    """Give the lease up at once (clean shutdown) instead of letting it expire."""
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def get_lease(session: Session, name: str) -> SchedulerLease | None:
    return session.get(SchedulerLease, name)


# --- schedules ---------------------------------------------------------------------------


def _check(registry: Registry, run_type: str, params: dict[str, Any]) -> None:
    runs.check_params(registry, run_type, params)  # also 400 for an unknown type


def create_schedule(
    session: Session,
    actor: Actor,
    registry: Registry,
    *,
    job_key: str,
    run_type: str,
    cron: str,
    timezone: str = "Europe/Paris",
    platform_key: str | None = None,
    params: dict[str, Any] | None = None,
    enabled: bool = True,
) -> Schedule:
    require_role(actor, Role.admin, "creating a schedule")
    params = dict(params or {})
    _check(registry, run_type, params)
    cron = check_cron(cron)
    timezone = check_timezone(timezone)
    if session.scalar(
        select(Schedule.id).where(
            Schedule.workspace_id == actor.workspace_id, Schedule.job_key == job_key
        )
    ):
        raise AlreadyExists(
            f"a schedule with job_key {job_key!r} already exists", details={"field": "job_key"}
        )
    now = clock.now()
    schedule = Schedule(
        workspace_id=actor.workspace_id,
        job_key=job_key,
        run_type=run_type,
        platform_key=platform_key,
        params=params,
        cron=cron,
        timezone=timezone,
        enabled=enabled,
        created_at=now,
        updated_at=now,
        # Firings are counted from now: creating a schedule never fires the past.
        last_fired_at=now,
    )
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, actor: Actor, job_key: str) -> Schedule:
    schedule = session.scalar(
        select(Schedule).where(
            Schedule.workspace_id == actor.workspace_id, Schedule.job_key == job_key
        )
    )
    if schedule is None:
        raise NotFound(f"no schedule {job_key!r}")
    return schedule


def list_schedules(session: Session, workspace_id: uuid.UUID) -> list[Schedule]:
    return list(
        session.scalars(
            select(Schedule).where(Schedule.workspace_id == workspace_id).order_by(Schedule.job_key)
        )
    )


def update_schedule(
    session: Session, actor: Actor, registry: Registry, job_key: str, changes: dict[str, Any]
) -> Schedule:
    require_role(actor, Role.admin, "changing a schedule")
    schedule = get_schedule(session, actor, job_key)
    run_type = changes.get("run_type") or schedule.run_type
    params = changes["params"] if changes.get("params") is not None else schedule.params
    _check(registry, run_type, params)
    if changes.get("cron") is not None:
        changes["cron"] = check_cron(changes["cron"])
    if changes.get("timezone") is not None:
        changes["timezone"] = check_timezone(changes["timezone"])
    was_enabled = schedule.enabled
    retimed = any(changes.get(k) not in (None, getattr(schedule, k)) for k in ("cron", "timezone"))
    for key, value in changes.items():
        if value is not None or key == "platform_key":
            setattr(schedule, key, value)
    if (changes.get("enabled") is True and not was_enabled) or retimed:
        schedule.last_fired_at = clock.now()  # a re-enabled or re-timed schedule starts now
    schedule.updated_at = clock.now()
    return schedule


def delete_schedule(session: Session, actor: Actor, job_key: str) -> None:
    require_role(actor, Role.admin, "deleting a schedule")
    session.delete(get_schedule(session, actor, job_key))


def get_next_firings(
    schedule: Schedule, *, after: datetime | None = None, count: int = 5
) -> list[datetime]:
    return next_firings(schedule.cron, schedule.timezone, after or clock.now(), count)


def due_firing(schedule: Schedule, now: datetime) -> datetime | None:
    """The latest firing since the last one handled, if any (missed firings fire once)."""
    after = schedule.last_fired_at or schedule.created_at
    return latest_firing(schedule.cron, schedule.timezone, after, now)


@dataclass
class Firing:
    schedule: Schedule
    at: datetime
    run_id: uuid.UUID | None
    skipped: str | None


def start_scheduled_run(
    session: Session,
    registry: Registry,
    schedule: Schedule,
    *,
    at: datetime,
    via: str,
    stuck_after: timedelta,
    tz: str,
    notify: Notifier | None,
) -> Firing:
    """Turn one firing into a queued run (or a logged skip); marks the firing handled."""
    actor = system_actor(schedule.workspace_id, via)
    key = f"{via}:{schedule.id}:{at.isoformat()}"
    firing = Firing(schedule=schedule, at=at, run_id=None, skipped=None)
    try:
        with session.begin_nested():
            run, _ = runs.create_run(
                session,
                actor,
                registry,
                run_type=schedule.run_type,
                platform_key=schedule.platform_key,
                params=schedule.params,
                idempotency_key=key,
                stuck_after=stuck_after,
                tz=tz,
                notify=notify,
            )
        firing.run_id = run.id
        schedule.last_run_id = run.id
    except DuplicateRun as exc:
        firing.skipped = exc.message
        logs.create_log(
            session,
            message="autopilot.skip_duplicate",
            level=LogLevel.warn,
            source=LogSource.autopilot,
            workspace_id=schedule.workspace_id,
            metadata={
                "job_key": schedule.job_key,
                "run_type": schedule.run_type,
                "running_minutes": exc.details.get("running_minutes"),
                "running_run_id": exc.details.get("running_run_id"),
                "via": via,
            },
        )
    except (BudgetExceeded, RunhqError) as exc:
        firing.skipped = exc.message
        logs.create_log(
            session,
            message="schedule.skipped",
            level=LogLevel.warn,
            source=LogSource.autopilot,
            workspace_id=schedule.workspace_id,
            metadata={
                "job_key": schedule.job_key,
                "run_type": schedule.run_type,
                "reason": exc.message,
                "code": exc.code,
                "via": via,
            },
        )
    schedule.last_fired_at = max(at, schedule.last_fired_at or at)
    return firing


def fire_due_schedules(
    session: Session,
    registry: Registry,
    *,
    stuck_after: timedelta,
    tz: str,
    notify: Notifier | None,
    limit: int = 500,
) -> list[Firing]:
    """Plain cron mode: every enabled schedule of a workspace whose autopilot is off."""
    now = clock.now()
    autopilot_on = select(AutopilotSettings.workspace_id).where(AutopilotSettings.enabled.is_(True))
    schedules = session.scalars(
        select(Schedule)
        .where(Schedule.enabled.is_(True), Schedule.workspace_id.not_in(autopilot_on))
        .order_by(Schedule.last_fired_at)
        .limit(limit)
    ).all()
    fired = []
    for schedule in schedules:
        at = due_firing(schedule, now)
        if at is not None:
            fired.append(
                start_scheduled_run(
                    session,
                    registry,
                    schedule,
                    at=at,
                    via="scheduler",
                    stuck_after=stuck_after,
                    tz=tz,
                    notify=notify,
                )
            )
    return fired
