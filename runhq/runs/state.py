"""The one state machine of a run. Every status change goes through ``transition()``.

A transition is a compare-and-set on the status (``UPDATE … WHERE status = :from``), so two
workers, or a worker and a cancel, can never both move the same run; and it writes its
structured log line in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from runhq import clock
from runhq.errors import InvalidTransition
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.runs.models import TERMINAL_STATUSES, Run, RunStatus

S = RunStatus
ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    S.pending_approval: frozenset({S.queued, S.rejected, S.cancelled}),
    # queued → pending_approval: an approved plan was edited and needs a new approval.
    S.queued: frozenset({S.running, S.cancelled, S.pending_approval}),
    # running → pending_approval: an action run's plan is ready for the owner.
    S.running: frozenset({S.completed, S.failed, S.cancelled, S.pending_approval}),
    S.completed: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
    S.rejected: frozenset(),
}

# The log line each arrival state writes (seed 001 names for started/completed/failed).
_EVENTS: dict[RunStatus, tuple[str, LogLevel]] = {
    S.queued: ("run.queued", LogLevel.info),
    S.pending_approval: ("run.awaiting_approval", LogLevel.info),
    S.running: ("run.started", LogLevel.info),
    S.completed: ("run.completed", LogLevel.info),
    S.failed: ("run.failed", LogLevel.error),
    S.cancelled: ("run.cancelled", LogLevel.warn),
    S.rejected: ("run.rejected", LogLevel.warn),
}


class StaleTransition(InvalidTransition):
    """Another process changed the run first (lost the compare-and-set)."""


def check_transition(current: RunStatus, target: RunStatus) -> None:
    if target not in ALLOWED[current]:
        raise InvalidTransition(
            f"a {current.value} run cannot become {target.value}",
            details={"status": current.value, "requested": target.value},
        )


def transition(
    session: Session,
    run: Run,
    target: RunStatus,
    *,
    values: dict[str, Any] | None = None,
    log_metadata: dict[str, Any] | None = None,
    source: LogSource = LogSource.executive_run,
    unless_cancel_requested: bool = False,
    claim_token: uuid.UUID | None = None,
) -> Run:
    """Move ``run`` to ``target`` (with extra column ``values``) and log it; no commit.

    ``unless_cancel_requested``: also lose the compare-and-set if a cancel was requested
    meanwhile (the engine's final step), without reading the row first.
    ``claim_token``: the fencing token of the worker that claimed the run; a worker whose
    claim was taken away (reaped) cannot write a result.
    """
    current = RunStatus(run.status)
    check_transition(current, target)
    now = clock.now()
    changes: dict[str, Any] = {"status": target.value, "updated_at": now, **(values or {})}
    if target == S.running:
        changes.setdefault("started_at", now)
    if target in TERMINAL_STATUSES:
        changes["active_key"] = None  # frees the anti-double-run slot
        changes.setdefault("finished_at", now)
    stmt = update(Run).where(Run.id == run.id, Run.status == current.value)
    if unless_cancel_requested:
        stmt = stmt.where(Run.cancel_requested.is_(False))
    if claim_token is not None:
        stmt = stmt.where(Run.claim_token == claim_token)
    result = session.execute(stmt.values(**changes).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleTransition(
            f"run {run.id} changed concurrently (expected {current.value})",
            details={"run_id": str(run.id)},
        )
    for key, value in changes.items():
        set_committed_value(run, key, value)
    message, level = _EVENTS[target]
    logs.create_log(
        session,
        message=message,
        level=level,
        source=source,
        workspace_id=run.workspace_id,
        run_id=run.id,
        metadata=_log_metadata(run, current, target, now, log_metadata),
    )
    return run


def _log_metadata(
    run: Run, current: RunStatus, target: RunStatus, now: datetime, extra: dict[str, Any] | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "run_id": str(run.id),
        "run_type": run.run_type,
        "platform_key": run.platform_key,
        "from": current.value,
        "to": target.value,
    }
    if target == S.running:
        meta.update(
            model=run.model_requested,
            user_id=str(run.requested_by) if run.requested_by else None,
            cost_estimate=run.estimated_cost,
        )
    elif target == S.completed:
        meta.update(
            model=run.model_used,
            duration_ms=run.duration_ms,
            cost_estimate=run.estimated_cost,
            actual_cost=run.actual_cost,
        )
    meta.update(extra or {})
    return meta


def claim(session: Session, run_id: uuid.UUID) -> Run | None:
    """``queued → running`` in one statement (UPDATE … RETURNING); None if not queued.

    The compare-and-set is the fencing: of two workers handed the same run, one claims it.
    """
    check_transition(S.queued, S.running)
    now = clock.now()
    run = session.scalars(
        update(Run)
        .where(Run.id == run_id, Run.status == S.queued.value)
        .values(
            status=S.running.value,
            started_at=now,
            updated_at=now,
            heartbeat_at=now,
            claim_token=uuid.uuid4(),
        )
        .returning(Run),
        execution_options={"synchronize_session": False},
    ).one_or_none()
    if run is None:
        return None
    message, level = _EVENTS[S.running]
    logs.create_log(
        session,
        message=message,
        level=level,
        source=LogSource.executive_run,
        workspace_id=run.workspace_id,
        run_id=run.id,
        metadata=_log_metadata(run, S.queued, S.running, now, None),
    )
    return run


def record_heartbeat(session: Session, run_id: uuid.UUID, claim_token: uuid.UUID) -> bool:
    """The claiming worker says the run is alive; False once the claim was lost."""
    result = session.execute(
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == S.running.value,
            Run.claim_token == claim_token,
        )
        .values(heartbeat_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_facts(
    session: Session, run: Run, *, context: dict[str, Any], prompt: dict[str, Any]
) -> bool:
    """Store the gathered facts and the prompt, if this worker still holds the claim."""
    now = clock.now()
    result = session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status == S.running.value, Run.claim_token == run.claim_token)
        .values(context=context, prompt=prompt, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    for key, value in (("context", context), ("prompt", prompt), ("updated_at", now)):
        set_committed_value(run, key, value)
    return True
