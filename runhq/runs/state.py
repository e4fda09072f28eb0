"""The one state machine of a run. Every status change goes through ``transition()``.

A transition is a compare-and-set on the status (``UPDATE … WHERE status = :from``), so two
workers, or a worker and a cancel, can never both move the same run; and it writes its
structured log line in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Table,
    Update,
    bindparam,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from runhq import clock
from runhq.db.compiled import Compiled
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


class RunRecord:
    """A run's row as the engine carries it between its transactions.

    Plain attributes copied from the row the claim returned: no ORM identity, so claiming,
    storing facts and finishing cost statements, not object loading (an ORM load of a run is
    several times the price of the statement on SQLite). Only the engine's hot path uses it;
    everything else works on ``Run``.
    """

    id: uuid.UUID
    workspace_id: uuid.UUID
    run_type: str
    platform_key: str | None
    params: dict[str, Any]
    status: str
    phase: str
    requested_by: uuid.UUID | None
    model_requested: str
    model_used: str | None
    estimated_cost: float
    actual_cost: float | None
    duration_ms: int | None
    cancel_requested: bool
    claim_token: uuid.UUID | None
    context: dict[str, Any] | None

    def __init__(self, row: Mapping[Any, Any]) -> None:  # a RowMapping: str keys
        self.__dict__.update(row)


# What a transition may be handed: the ORM row (services) or the engine's record.
AnyRun = Run | RunRecord
# Where its statements go: a Session's transaction, or a Core connection's (the engine).
Executor = Session | Connection


def _apply(run: AnyRun, changes: Mapping[str, Any]) -> None:
    """Reflect what was written on the caller's copy, without marking an ORM row dirty."""
    if isinstance(run, Run):
        for key, value in changes.items():
            set_committed_value(run, key, value)
    else:
        run.__dict__.update(changes)


# The run engine's hot path builds its statements once per shape: a statement object reused
# with bound parameters keeps its cache key and compiled SQL (SQLAlchemy memoises both), where
# building one per call costs more than the database round trip on SQLite.
_RUNS = cast(Table, Run.__table__)
_UPDATES: dict[tuple[tuple[str, ...], bool, bool], Update] = {}


def _update_statement(keys: tuple[str, ...], *, unless_cancel: bool, fenced: bool) -> Update:
    """``UPDATE runs SET <keys> WHERE id = :w_id AND status = :w_status [...]``, cached."""
    shape = (keys, unless_cancel, fenced)
    stmt = _UPDATES.get(shape)
    if stmt is None:
        conditions: list[ColumnElement[bool]] = [
            _RUNS.c.id == bindparam("w_id"),
            _RUNS.c.status == bindparam("w_status"),
        ]
        if unless_cancel:
            conditions.append(_RUNS.c.cancel_requested.is_(False))
        if fenced:
            conditions.append(_RUNS.c.claim_token == bindparam("w_token"))
        stmt = (
            update(_RUNS)
            .where(*conditions)
            .values({_RUNS.c[key]: bindparam(f"v_{key}", type_=_RUNS.c[key].type) for key in keys})
        )
        _UPDATES[shape] = stmt
    return stmt


def _update_params(
    run_id: uuid.UUID,
    current: RunStatus,
    changes: dict[str, Any],
    *,
    unless_cancel: bool,
    claim_token: uuid.UUID | None,
) -> tuple[Update, dict[str, Any]]:
    """The compare-and-set of ``changes`` on a run still ``current``, and its parameters."""
    keys = tuple(sorted(changes))
    stmt = _update_statement(keys, unless_cancel=unless_cancel, fenced=claim_token is not None)
    params: dict[str, Any] = {f"v_{key}": changes[key] for key in keys}
    params.update(w_id=run_id, w_status=current.value)
    if claim_token is not None:
        params["w_token"] = claim_token
    return stmt, params


def _update_run(
    session: Executor,
    run_id: uuid.UUID,
    current: RunStatus,
    changes: dict[str, Any],
    *,
    claim_token: uuid.UUID | None = None,
) -> bool:
    """Compare-and-set ``changes`` on the run if it is still ``current`` (no log line)."""
    stmt, params = _update_params(
        run_id, current, changes, unless_cancel=False, claim_token=claim_token
    )
    if isinstance(session, Session):
        session.flush()
    result = session.execute(stmt, params)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _on_postgresql(executor: Executor) -> bool:
    bind = executor if isinstance(executor, Connection) else executor.get_bind()
    return bind.dialect.name == "postgresql"


# On PostgreSQL a change and its log line are one statement (``WITH change AS (UPDATE …
# RETURNING id) INSERT INTO structured_logs … SELECT … FROM change``): one round trip instead
# of two, and atomic on its own, so the engine can send it outside an explicit transaction
# (ADR 0014). SQLite has no data-modifying CTE: there the two statements share the caller's
# transaction, the change sent on the DBAPI cursor (ADR 0015). Each form is built once per
# change statement, as the statements themselves.
_LOGGED: dict[Update, Insert] = {}
_COMPILED: dict[Update, Compiled] = {}


def _logged(change: Update) -> Insert:
    stmt = _LOGGED.get(change)
    if stmt is None:
        stmt = logs.insert_log_after(change.returning(_RUNS.c.id).cte("change"))
        _LOGGED[change] = stmt
    return stmt


def _compiled(change: Update) -> Compiled:
    compiled = _COMPILED.get(change)
    if compiled is None:
        compiled = _COMPILED[change] = Compiled(change)
    return compiled


def _change_and_log(
    executor: Executor, change: Update, params: dict[str, Any], log_row: dict[str, Any]
) -> bool:
    """Run the compare-and-set ``change`` and, if it matched, insert ``log_row``; False if it
    did not match (nothing written)."""
    if isinstance(executor, Session):
        # A Core statement does not autoflush: pending ORM changes go first, as they would.
        executor.flush()
    if _on_postgresql(executor):
        result = executor.execute(_logged(change), {**params, **logs.log_params(log_row)})
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]
    conn = executor if isinstance(executor, Connection) else executor.connection()
    if _compiled(change).rowcount(conn, params) != 1:
        return False
    logs.create_log_row(conn, log_row)
    return True


def check_transition(current: RunStatus, target: RunStatus) -> None:
    if target not in ALLOWED[current]:
        raise InvalidTransition(
            f"a {current.value} run cannot become {target.value}",
            details={"status": current.value, "requested": target.value},
        )


def transition(
    session: Executor,
    run: AnyRun,
    target: RunStatus,
    *,
    values: dict[str, Any] | None = None,
    log_metadata: dict[str, Any] | None = None,
    source: LogSource = LogSource.executive_run,
    unless_cancel_requested: bool = False,
    claim_token: uuid.UUID | None = None,
) -> None:
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
    stmt, params = _update_params(
        run.id, current, changes, unless_cancel=unless_cancel_requested, claim_token=claim_token
    )
    message, level = _EVENTS[target]
    log_row = logs.build_log_row(
        message=message,
        level=level,
        source=source,
        workspace_id=run.workspace_id,
        run_id=run.id,
        metadata=_log_metadata(run, changes, current, target, log_metadata),
    )
    if not _change_and_log(session, stmt, params, log_row):
        raise StaleTransition(
            f"run {run.id} changed concurrently (expected {current.value})",
            details={"run_id": str(run.id)},
        )
    _apply(run, changes)


def _log_metadata(
    run: AnyRun,
    changes: Mapping[str, Any],
    current: RunStatus,
    target: RunStatus,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """The seed's fields of the transition's log line, from the run as it will be."""

    def value(key: str) -> Any:
        return changes[key] if key in changes else getattr(run, key)

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
            model=value("model_used"),
            duration_ms=value("duration_ms"),
            cost_estimate=run.estimated_cost,
            actual_cost=value("actual_cost"),
        )
    meta.update(extra or {})
    return meta


# The record's own fields only: a run's prompt, output and plan are large and not needed
# to execute it (each column read is also a conversion: JSON, dates on SQLite).
_READ_RUN = select(*(_RUNS.c[name] for name in RunRecord.__annotations__)).where(
    _RUNS.c.id == bindparam("run_id")
)


_READ_RUN_COMPILED = Compiled(_READ_RUN)


def get_run_record(conn: Connection, run_id: uuid.UUID) -> RunRecord | None:
    """The run's row as a plain record (no ORM load), or None if there is no such run."""
    values = _READ_RUN_COMPILED.first(conn, {"run_id": run_id})
    return None if values is None else RunRecord(values)


def _claim_statement(*, with_facts: bool) -> Update:
    values: dict[str, Any] = {
        "status": S.running.value,
        "started_at": bindparam("started_at"),
        "updated_at": bindparam("now"),
        "heartbeat_at": bindparam("now"),
        "claim_token": bindparam("token"),
    }
    if with_facts:
        values.update(context=bindparam("context"), prompt=bindparam("prompt"))
    return (
        update(_RUNS)
        .where(_RUNS.c.id == bindparam("run_id"), _RUNS.c.status == S.queued.value)
        .values(values)
    )


_CLAIM = _claim_statement(with_facts=False)
_CLAIM_WITH_FACTS = _claim_statement(with_facts=True)


def claim(
    conn: Executor,
    run: RunRecord,
    *,
    started_at: datetime | None = None,
    context: dict[str, Any] | None = None,
    prompt: dict[str, Any] | None = None,
) -> bool:
    """``queued → running`` in one compare-and-set, storing the facts and the prompt the
    worker gathered for it (if given); False if the run is no longer queued.

    The compare-and-set is the fencing: of two workers handed the same run, one claims it,
    and the claim token it writes fences every later write of that worker.
    """
    check_transition(S.queued, S.running)
    now = clock.now()
    changes: dict[str, Any] = {
        "status": S.running.value,
        "started_at": started_at or now,
        "updated_at": now,
        "heartbeat_at": now,
        "claim_token": uuid.uuid4(),
    }
    params: dict[str, Any] = {
        "run_id": run.id,
        "started_at": changes["started_at"],
        "now": now,
        "token": changes["claim_token"],
    }
    stmt = _CLAIM
    if context is not None or prompt is not None:
        stmt = _CLAIM_WITH_FACTS
        changes.update(context=context, prompt=prompt)
        params.update(context=context, prompt=prompt)
    message, level = _EVENTS[S.running]
    log_row = logs.build_log_row(
        message=message,
        level=level,
        source=LogSource.executive_run,
        workspace_id=run.workspace_id,
        run_id=run.id,
        metadata=_log_metadata(run, changes, S.queued, S.running, None),
        # Stamped when the worker began (seed 001: run.started comes before the facts).
        created_at=changes["started_at"],
    )
    if not _change_and_log(conn, stmt, params, log_row):
        return False
    _apply(run, changes)
    return True


_RUN_STATE = select(_RUNS.c.status, _RUNS.c.cancel_requested).where(
    _RUNS.c.id == bindparam("run_id")
)


def refresh_state(conn: Executor, run: AnyRun) -> RunStatus:
    """Re-read the run's status and cancel flag (after losing a compare-and-set)."""
    row = conn.execute(_RUN_STATE, {"run_id": run.id}).one()
    _apply(run, {"status": row.status, "cancel_requested": row.cancel_requested})
    return RunStatus(row.status)


def record_heartbeat(session: Executor, run_id: uuid.UUID, claim_token: uuid.UUID) -> bool:
    """The claiming worker says the run is alive; False once the claim was lost."""
    return _update_run(
        session, run_id, S.running, {"heartbeat_at": clock.now()}, claim_token=claim_token
    )
