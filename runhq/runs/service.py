"""The only writer of runs and approvals: create, approve, reject, cancel, retry, read.

Services never commit: the request or task boundary does. Work for the executor is
announced after commit (``on_commit``), so a worker never sees a run that was rolled back.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import jsonschema
from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Table,
    TextualSelect,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, defer, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from runhq import clock
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.auth.service import require_role
from runhq.costs import service as costs
from runhq.db.base import new_id
from runhq.db.compiled import Compiled
from runhq.db.session import on_commit
from runhq.errors import (
    DuplicateRun,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.pagination import fetch_page
from runhq.registry.schemas import RunTypeSpec
from runhq.registry.service import Registry
from runhq.runs.models import ACTIVE_STATUSES, Run, RunApproval, RunStatus
from runhq.runs.state import transition

# Called after commit with the id of a run that became queued: the executor's doorbell.
Notifier = Callable[[uuid.UUID], None]


def _active_key(run_type: str, platform_key: str | None) -> str:
    return f"{run_type}|{platform_key or ''}"


# A validator per run type's parameters, built once: building one costs more than validating.
# Keyed by the spec's ``params`` mapping, kept alive here so that its id is never reused
# (``params_schema`` is a new dict on each call; a copy of a spec with other parameters has
# another mapping, so it gets its own validator).
_VALIDATORS: dict[int, tuple[dict[str, Any], jsonschema.Draft202012Validator]] = {}


def _validator(spec: RunTypeSpec) -> jsonschema.Draft202012Validator:
    cached = _VALIDATORS.get(id(spec.params))
    if cached is None or cached[0] is not spec.params:
        cached = (spec.params, jsonschema.Draft202012Validator(spec.params_schema))
        _VALIDATORS[id(spec.params)] = cached
    return cached[1]


# The JSON Schema keywords a parameter can fail (``ParamSpec.json_schema``), named as such in
# an InvalidInput's details.reason.
_PARAM_REASONS = frozenset({"type", "enum", "minimum", "maximum", "maxLength", "maxItems"})


def check_params(registry: Registry, run_type: str, params: dict[str, Any]) -> None:
    """422 naming the first parameter at fault."""
    spec = registry.get(run_type)
    if not params and not any(p.required for p in spec.params.values()):
        return  # no parameters, none required: valid against any run type's schema
    validator = _validator(spec)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.path))
    if not errors:
        return
    err = errors[0]
    # details: the field (API name), the parameter, and why (``reason``, with what was
    # ``expected``): enough for a surface to say it in its own language.
    if err.validator == "additionalProperties":
        allowed = sorted(spec.params) or ["(none)"]
        unknown = sorted(set(params) - set(spec.params))
        raise InvalidInput(
            f"params: unknown parameter(s) {', '.join(unknown)} for {run_type}; "
            f"accepted: {', '.join(allowed)}",
            details={
                "field": f"params.{unknown[0]}",
                "param": unknown[0],
                "reason": "unknown",
                "accepted": allowed,
            },
        )
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else "?"
        raise InvalidInput(
            f"params.{missing}: required for {run_type}",
            details={"field": f"params.{missing}", "param": missing, "reason": "required"},
        )
    path = [str(p) for p in err.path]
    field = "params." + ".".join(path)
    details: dict[str, Any] = {"field": field, "param": path[0] if path else ""}
    if isinstance(err.validator, str) and err.validator in _PARAM_REASONS:
        details["reason"] = err.validator
        details["expected"] = err.validator_value
    raise InvalidInput(f"{field}: {err.message}", details=details)


def get_run(session: Session, actor: Actor, run_id: uuid.UUID) -> Run:
    run = session.get(Run, run_id)
    if run is None or run.workspace_id != actor.workspace_id:
        raise NotFound(f"no run {run_id}")
    return run


_FIND_ACTIVE = select(Run).where(
    Run.workspace_id == bindparam("workspace_id"), Run.active_key == bindparam("key")
)


def _find_active(session: Session, workspace_id: uuid.UUID, key: str) -> Run | None:
    run: Run | None = session.scalar(_FIND_ACTIVE, {"workspace_id": workspace_id, "key": key})
    return run


def _override_if_stuck(session: Session, run: Run, stuck_after: timedelta, via: str) -> bool:
    """Seed 001: a run 'running' for more than 15 min is stuck: fail it, allow a new one."""
    if run.status != RunStatus.running or run.started_at is None:
        return False
    running_for = clock.now() - run.started_at
    if running_for <= stuck_after:
        return False
    minutes = int(running_for.total_seconds() // 60)
    transition(
        session,
        run,
        RunStatus.failed,
        values={"error": f"stuck: running for {minutes} min with no result (overridden)"},
        log_metadata={"error_message": "stuck run overridden"},
    )
    logs.create_log(
        session,
        message="autopilot.stuck_run_override",
        level=LogLevel.warn,
        # Seed 001's event name, whoever asked: the source says who it was.
        source=LogSource.autopilot if via == "autopilot" else LogSource.executive_run,
        workspace_id=run.workspace_id,
        run_id=run.id,
        metadata={
            "job_key": run.run_type,
            "run_type": run.run_type,
            "stuck_run_id": str(run.id),
            "running_minutes": minutes,
        },
    )
    return True


def _duplicate_error(run: Run) -> DuplicateRun:
    minutes = 0
    if run.started_at is not None:
        minutes = int((clock.now() - run.started_at).total_seconds() // 60)
    return DuplicateRun(
        f"a {run.run_type} run is already {run.status.replace('_', ' ')} "
        f"({run.id}); wait for it or cancel it",
        details={
            "running_run_id": str(run.id),
            "run_type": run.run_type,
            "status": run.status,
            "running_minutes": minutes,
        },
    )


# A column's default for ``_insert_run``: its name, a zero-argument default to call (or
# None), and otherwise the value to bind.
_Default = tuple[str, Callable[[Any], Any] | None, Any]


def _build_insert() -> tuple[TextualSelect, list[_Default]]:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id`` for runs.

    ON CONFLICT instead of catching IntegrityError: no SAVEPOINT round trips on every
    creation, and the transaction stays usable when a unique index (the anti-double-run
    slot, the idempotency key) refuses the row. Written as text because SQLAlchemy's
    dialect-specific INSERT constructs are never cached (each call would be compiled again);
    the syntax is the same on SQLite (3.35+) and PostgreSQL. Every column is bound, with
    the model's own defaults for those the caller does not give.
    """
    table = cast(Table, Run.__table__)
    names = [column.name for column in table.c]
    # The names are the model's own columns, never input.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
        f"VALUES ({', '.join(':' + name for name in names)}) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    stmt = (
        text(sql)
        .bindparams(*(bindparam(column.name, type_=column.type) for column in table.c))
        .columns(table.c.id)
    )
    # SQLAlchemy wraps zero-argument defaults (dict, clock.now, new_id) to take an execution
    # context they ignore. Sorted out once here, not per column of every run.
    defaults: list[_Default] = []
    for column in table.c:
        default = column.default
        if default is None:
            defaults.append((column.name, None, None))
        elif isinstance(default, CallableColumnDefault):
            defaults.append((column.name, default.arg, None))
        elif isinstance(default, ScalarElementColumnDefault):
            defaults.append((column.name, None, default.arg))
        else:  # pragma: no cover - a SQL-expression default would need the ORM path
            raise TypeError(f"runs.{column.name}: unsupported default {default!r}")
    return stmt, defaults


_INSERT_RUN, _RUN_DEFAULTS = _build_insert()
# On PostgreSQL the run and its run.created line are one statement (ADR 0014): the log line
# is inserted only if the run was.
_INSERT_RUN_LOGGED = logs.insert_log_after(_INSERT_RUN.cte("created"))
# On SQLite, sent on the DBAPI cursor (``runhq.db.compiled``), its log line after it.
_INSERT_RUN_COMPILED = Compiled(_INSERT_RUN)


def _insert_run(session: Session, values: dict[str, Any], log_row: dict[str, Any]) -> Run | None:
    """The new run, with its log line ``log_row``; or None, with nothing written, if a unique
    index (active slot, idempotency key) refused it."""
    params = {
        name: values[name] if name in values else scalar if make is None else make(None)
        for name, make, scalar in _RUN_DEFAULTS
    }
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        logged = conn.execute(_INSERT_RUN_LOGGED, {**params, **logs.log_params(log_row)})
        if logged.rowcount != 1:
            return None
    elif _INSERT_RUN_COMPILED.first(conn, params) is None:
        return None
    else:
        logs.create_log_row(conn, log_row)
    # The row holds exactly these values: build the object as a load would (committed
    # state, no history) instead of reading the row back, which costs more than the insert.
    run: Run = Run.__mapper__.class_manager.new_instance()
    instance_state(run).dict.update(params)
    make_transient_to_detached(run)
    session.add(run)
    return run


def create_run(
    session: Session,
    actor: Actor,
    registry: Registry,
    *,
    run_type: str,
    platform_key: str | None = None,
    params: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    stuck_after: timedelta = timedelta(minutes=15),
    tz: str = "Europe/Paris",
    notify: Notifier | None = None,
    parent: Run | None = None,
) -> tuple[Run, bool]:
    """Create a run, or return the one an idempotency key already created.

    Returns ``(run, created)``. Refuses before writing anything: unknown type (400), bad
    params (422), a viewer (403), an active run of the same type and platform (409), or a
    budget that this run's estimate would exceed (402).
    """
    require_role(actor, Role.operator, "starting a run")
    spec = registry.get(run_type)
    params = dict(params or {})
    check_params(registry, run_type, params)

    def replay() -> Run | None:
        """The run this idempotency key already created (re-read: races commit meanwhile)."""
        if not idempotency_key:
            return None
        existing = session.scalar(
            select(Run).where(
                Run.workspace_id == actor.workspace_id, Run.idempotency_key == idempotency_key
            )
        )
        if existing is not None and (existing.run_type, existing.platform_key, existing.params) != (
            run_type,
            platform_key,
            params,
        ):
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} was used for a different request "
                f"(run {existing.id})",
                details={"run_id": str(existing.id)},
            )
        return existing

    if (existing := replay()) is not None:
        return existing, False

    costs.check_budget(
        session, actor.workspace_id, agent=spec.agent, estimate=spec.estimated_cost_eur, tz=tz
    )

    # An action run plans first (queued), then waits for approval of that plan; another
    # gated run waits for approval before anything reaches a model.
    if spec.action is not None:
        status, phase = RunStatus.queued, "plan"
    elif spec.requires_approval:
        status, phase = RunStatus.pending_approval, "single"
    else:
        status, phase = RunStatus.queued, "single"
    now = clock.now()
    key = _active_key(run_type, platform_key)
    run_id = new_id()
    values = {
        "id": run_id,
        "workspace_id": actor.workspace_id,
        "run_type": run_type,
        "agent": spec.agent,
        "platform_key": platform_key,
        "params": params,
        "status": status.value,
        "phase": phase,
        "active_key": key,
        "idempotency_key": idempotency_key,
        "requested_by": actor.person,
        "requested_via": actor.via,
        "model_requested": spec.model,
        "estimated_cost": spec.estimated_cost_eur,
        "attempt": parent.attempt + 1 if parent else 1,
        "parent_run_id": parent.id if parent else None,
        "created_at": now,
        "updated_at": now,
    }
    log_row = logs.build_log_row(
        message="run.created",
        source=LogSource.executive_run,
        workspace_id=actor.workspace_id,
        run_id=run_id,
        created_at=now,
        metadata={
            "run_type": run_type,
            "platform_key": platform_key,
            "status": status.value,
            "user_id": str(actor.person) if actor.person else None,
            "via": actor.via,
            "cost_estimate": spec.estimated_cost_eur,
            "parent_run_id": str(parent.id) if parent else None,
        },
    )
    # Insert first: the unique (workspace_id, active_key) index is the anti-double-run
    # check, so the common case costs no read; a refusal is explained below.
    run = _insert_run(session, values, log_row)
    if run is None:
        # The idempotency key's twin committed meanwhile: replay it.
        if (existing := replay()) is not None:
            return existing, False
        active = _find_active(session, actor.workspace_id, key)
        if active is not None and _override_if_stuck(session, active, stuck_after, actor.via):
            run = _insert_run(session, values, log_row)
        elif active is not None:
            raise _duplicate_error(active)
    if run is None:
        # Another request took the slot between the refusal and the read above.
        winner = _find_active(session, actor.workspace_id, key)
        if winner is not None:
            raise _duplicate_error(winner)
        raise DuplicateRun(
            f"a {run_type} run was started at the same moment; try again",
            details={"run_type": run_type},
        )
    if status == RunStatus.queued and notify is not None:
        on_commit(session, lambda: notify(run_id))
    return run, True


def approve_run(
    session: Session,
    actor: Actor,
    run_id: uuid.UUID,
    *,
    reason: str | None,
    notify: Notifier | None = None,
    plan_hash: str | None = None,
    ttl: timedelta = timedelta(hours=24),
) -> Run:
    """An owner lets a gated run go to the queue.

    For an action run the approval is bound to the plan it was shown (``plan_hash``, when
    the caller passes the one it displayed) and expires after ``ttl``; the act phase
    checks both. For other gated runs nothing reached a model before this.
    """
    require_role(actor, Role.owner, "approving a run")
    run = get_run(session, actor, run_id)
    if run.status != RunStatus.pending_approval:
        raise InvalidTransition(
            f"run {run.id} is {run.status}, not pending_approval: nothing to approve",
            details={"status": run.status, "action": "approve"},
        )
    values: dict[str, Any] = {}
    expires_at = None
    if run.phase == "review":
        if plan_hash is not None and plan_hash != run.plan_hash:
            raise InvalidTransition(
                "the plan changed since you looked at it: review the new plan and approve it",
                details={"plan_hash": run.plan_hash, "reason": "plan_changed"},
            )
        values["phase"] = "act"
        expires_at = clock.now() + ttl
    _record_decision(session, actor, run, "approved", reason, expires_at=expires_at)
    transition(
        session,
        run,
        RunStatus.queued,
        values=values,
        log_metadata={
            "approved_by": str(actor.user_id),
            "reason": reason,
            "plan_hash": run.plan_hash,
        },
    )
    if notify is not None:
        on_commit(session, lambda: notify(run_id))
    return run


def reject_run(session: Session, actor: Actor, run_id: uuid.UUID, *, reason: str) -> Run:
    require_role(actor, Role.owner, "rejecting a run")
    run = get_run(session, actor, run_id)
    if run.status != RunStatus.pending_approval:
        raise InvalidTransition(
            f"run {run.id} is {run.status}, not pending_approval: nothing to reject",
            details={"status": run.status, "action": "reject"},
        )
    _record_decision(session, actor, run, "rejected", reason)
    transition(
        session,
        run,
        RunStatus.rejected,
        values={"error": f"rejected: {reason}"},
        log_metadata={"rejected_by": str(actor.user_id), "reason": reason},
    )
    return run


def _record_decision(
    session: Session,
    actor: Actor,
    run: Run,
    decision: str,
    reason: str | None,
    *,
    expires_at: datetime | None = None,
) -> None:
    session.add(
        RunApproval(
            workspace_id=run.workspace_id,
            run_id=run.id,
            decision=decision,
            reason=reason,
            decided_by=actor.user_id,
            created_at=clock.now(),
            plan_hash=run.plan_hash,
            expires_at=expires_at,
        )
    )


def plan_digest(plan: dict[str, Any]) -> str:
    """The identity of a plan: SHA-256 of its canonical JSON."""
    canonical = json.dumps(plan, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def update_plan(session: Session, actor: Actor, run_id: uuid.UUID, plan: dict[str, Any]) -> Run:
    """Edit an action run's plan before it acts; any earlier approval no longer applies."""
    require_role(actor, Role.admin, "editing a plan")
    run = get_run(session, actor, run_id)
    if run.phase not in ("review", "act") or run.status not in (
        RunStatus.pending_approval,
        RunStatus.queued,
    ):
        raise InvalidTransition(
            f"run {run.id} has no plan that can still be edited ({run.status}, {run.phase})",
            details={"status": run.status, "phase": run.phase, "action": "edit_plan"},
        )
    original = run.plan or {}
    for fixed in ("action", "run_type", "platform_key"):
        if plan.get(fixed) != original.get(fixed):
            raise InvalidInput(
                f"plan.{fixed} cannot be edited ({original.get(fixed)!r}); start another run",
                details={"field": f"plan.{fixed}"},
            )
    digest = plan_digest(plan)
    values = {"plan": plan, "plan_hash": digest, "phase": "review"}
    meta = {"edited_by": str(actor.user_id), "old_plan_hash": run.plan_hash, "plan_hash": digest}
    if run.status == RunStatus.queued:  # approved already: back to the owner
        transition(session, run, RunStatus.pending_approval, values=values, log_metadata=meta)
    else:
        for key, value in values.items():
            setattr(run, key, value)
        run.updated_at = clock.now()
    logs.create_log(
        session,
        message="run.plan_edited",
        level=LogLevel.warn,
        source=LogSource.executive_run,
        workspace_id=run.workspace_id,
        run_id=run.id,
        metadata=meta,
    )
    return run


def get_valid_approval(session: Session, run: Run) -> RunApproval | None:
    """The approval that lets ``run`` act now: for its current plan, not expired."""
    now = clock.now()
    approvals = session.scalars(
        select(RunApproval)
        .where(
            RunApproval.run_id == run.id,
            RunApproval.decision == "approved",
            RunApproval.plan_hash == run.plan_hash,
        )
        .order_by(RunApproval.created_at.desc())
    ).all()
    return next((a for a in approvals if a.expires_at is None or a.expires_at > now), None)


def get_latest_gate(
    session: Session,
    workspace_id: uuid.UUID,
    run_type: str,
    platform_key: str | None,
    since: datetime,
) -> Run | None:
    return session.scalar(
        select(Run)
        .where(
            Run.workspace_id == workspace_id,
            Run.run_type == run_type,
            Run.platform_key == platform_key,
            Run.status == RunStatus.completed.value,
            Run.finished_at >= since,
        )
        .order_by(Run.finished_at.desc())
        .limit(1)
    )


def cancel_run(session: Session, actor: Actor, run_id: uuid.UUID) -> Run:
    """Cancel a waiting run at once; ask a running one to stop at its next checkpoint."""
    require_role(actor, Role.operator, "cancelling a run")
    run = get_run(session, actor, run_id)
    status = RunStatus(run.status)
    if status in (RunStatus.pending_approval, RunStatus.queued):
        transition(
            session, run, RunStatus.cancelled, log_metadata={"cancelled_by": str(actor.user_id)}
        )
    elif status == RunStatus.running:
        run.cancel_requested = True
        run.updated_at = clock.now()
        logs.create_log(
            session,
            message="run.cancel_requested",
            level=LogLevel.warn,
            source=LogSource.executive_run,
            workspace_id=run.workspace_id,
            run_id=run.id,
            metadata={"cancelled_by": str(actor.user_id)},
        )
    else:
        raise InvalidTransition(
            f"run {run.id} is already {run.status}: nothing to cancel",
            details={"status": run.status, "action": "cancel"},
        )
    return run


_CONTROL = select(Run.status, Run.cancel_requested, Run.claim_token).where(
    Run.id == bindparam("run_id")
)


def get_stop_reason(
    session: Session, run_id: uuid.UUID, claim_token: uuid.UUID | None
) -> str | None:
    """Why the worker acting for a running run must stop now, or None to go on: a cancel
    was requested, or its claim was lost (the run was reaped or finished elsewhere)."""
    row = session.execute(_CONTROL, {"run_id": run_id}).first()
    if row is None or row.status != RunStatus.running.value or row.claim_token != claim_token:
        return "claim lost: the run is no longer running under this worker's claim"
    if row.cancel_requested:
        return "cancel requested"
    return None


def retry_run(
    session: Session,
    actor: Actor,
    registry: Registry,
    run_id: uuid.UUID,
    *,
    stuck_after: timedelta,
    tz: str,
    notify: Notifier | None = None,
) -> Run:
    """A new run with the same request, linked to the failed (or cancelled) one."""
    run = get_run(session, actor, run_id)
    if run.status not in (RunStatus.failed, RunStatus.cancelled):
        raise InvalidTransition(
            f"only failed or cancelled runs can be retried; run {run.id} is {run.status}",
            details={"status": run.status, "action": "retry"},
        )
    new, _ = create_run(
        session,
        actor,
        registry,
        run_type=run.run_type,
        platform_key=run.platform_key,
        params=run.params,
        stuck_after=stuck_after,
        tz=tz,
        notify=notify,
        parent=run,
    )
    return new


def list_runs(
    session: Session,
    actor: Actor,
    *,
    status: list[RunStatus] | None = None,
    run_type: str | None = None,
    agent: str | None = None,
    platform_key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    documents: bool = True,
) -> tuple[list[Run], str | None]:
    """One page of the workspace's runs, newest first, and the cursor of the next one.

    ``documents=False`` leaves out the large JSON columns (context, prompt, output, plan,
    price, action result) for listings that show only the run's own fields; touching one
    of them then raises instead of loading it row by row.
    """
    stmt = select(Run).where(Run.workspace_id == actor.workspace_id)
    if not documents:
        stmt = stmt.options(*_LISTING)
    if status:
        stmt = stmt.where(Run.status.in_([s.value for s in status]))
    if run_type:
        stmt = stmt.where(Run.run_type == run_type)
    if agent:
        stmt = stmt.where(Run.agent == agent)
    if platform_key:
        stmt = stmt.where(Run.platform_key == platform_key)
    if since:
        stmt = stmt.where(Run.created_at >= since)
    if until:
        stmt = stmt.where(Run.created_at < until)
    return fetch_page(session, stmt, Run.created_at, Run.id, cursor=cursor, limit=limit)


def list_runs_by_ids(
    session: Session, actor: Actor, run_ids: list[uuid.UUID], *, documents: bool = True
) -> list[Run]:
    """The runs of the caller's workspace among ``run_ids`` (others are left out), newest
    first: one query, for pages that refresh the runs they show."""
    if not run_ids:
        return []
    stmt = (
        select(Run)
        .where(Run.workspace_id == actor.workspace_id, Run.id.in_(run_ids))
        .order_by(Run.created_at.desc(), Run.id.desc())
    )
    if not documents:
        stmt = stmt.options(*_LISTING)
    return list(session.scalars(stmt))


def count_pending_approval(session: Session, workspace_id: uuid.UUID) -> int:
    """Runs waiting for an owner's decision (one indexed count)."""
    return int(
        session.scalar(
            select(func.count(Run.id)).where(
                Run.workspace_id == workspace_id,
                Run.status == RunStatus.pending_approval.value,
            )
        )
        or 0
    )


def count_failed_since(session: Session, workspace_id: uuid.UUID, since: datetime) -> int:
    """Runs created since ``since`` that failed (one indexed count)."""
    return int(
        session.scalar(
            select(func.count(Run.id)).where(
                Run.workspace_id == workspace_id,
                Run.status == RunStatus.failed.value,
                Run.created_at >= since,
            )
        )
        or 0
    )


def list_approvals(session: Session, run: Run) -> list[RunApproval]:
    return list(
        session.scalars(
            select(RunApproval).where(RunApproval.run_id == run.id).order_by(RunApproval.created_at)
        )
    )


def count_by_status(session: Session, workspace_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(Run.status, func.count(Run.id))
        .where(Run.workspace_id == workspace_id)
        .group_by(Run.status)
    ).all()
    return {status: int(n) for status, n in rows}


def list_queued_ids(session: Session, *, limit: int = 100) -> list[uuid.UUID]:
    """Queued runs of every workspace, oldest first (the executor's dispatcher reads this)."""
    return list(
        session.scalars(
            select(Run.id)
            .where(Run.status == RunStatus.queued.value)
            .order_by(Run.created_at)
            .limit(limit)
        )
    )


def is_active(run: Run) -> bool:
    return RunStatus(run.status) in ACTIVE_STATUSES


# No run has the nil id: "exclude nothing" without a second statement.
_NO_RUN = uuid.UUID(int=0)

# Read by every run's context and the autopilot: built once, parameters bound per call.
# Every status is listed: SQLite then reads each status's rows of the window in the
# covering status index (ADR 0021), not every row of the workspace's history.
_EVERY_STATUS = tuple(s.value for s in RunStatus)
_RECENT_STATS = (
    select(Run.run_type, Run.platform_key, Run.status, func.count(Run.id))
    .where(
        Run.workspace_id == bindparam("workspace_id"),
        Run.status.in_(_EVERY_STATUS),
        Run.created_at >= bindparam("since"),
        Run.id != bindparam("exclude"),
    )
    .group_by(Run.run_type, Run.platform_key, Run.status)
)


def get_recent_run_stats(
    session: Session,
    workspace_id: uuid.UUID,
    *,
    since: datetime,
    platform_key: str | None = None,
    exclude_run_id: uuid.UUID | None = None,
) -> list[dict[str, Any]]:
    """Per run type and platform since ``since``: counts by status."""
    params = {"workspace_id": workspace_id, "since": since, "exclude": exclude_run_id or _NO_RUN}
    stats: dict[tuple[str, str | None], dict[str, Any]] = {}
    for run_type, platform, status, count in session.execute(_RECENT_STATS, params).all():
        # One platform's lines are picked here, from the few grouped rows: with the platform
        # in the query SQLite prefers another index and reads every run of the workspace.
        if platform_key and platform != platform_key:
            continue
        entry = stats.setdefault(
            (run_type, platform),
            {"run_type": run_type, "platform_key": platform, "total": 0, "by_status": {}},
        )
        entry["by_status"][status] = int(count)
        entry["total"] += int(count)
    return sorted(stats.values(), key=lambda e: (-e["total"], e["run_type"]))


# Pages that list runs leave out the large JSON documents: a template that reaches for one
# raises at once (raiseload) instead of issuing a query per row.
_LISTING = tuple(
    defer(column, raiseload=True)
    for column in (
        Run.context,
        Run.prompt,
        Run.output,
        Run.plan,
        Run.price,
        Run.action_result,
    )
)

_LIMIT = bindparam("limit", type_=Integer)
# What a summary of a run says (context facts, the autopilot): rows, not objects, and only
# the beginning of the long texts.
_SUMMARY_COLUMNS = (
    Run.id,
    Run.run_type,
    Run.platform_key,
    Run.params,
    Run.created_at,
    Run.finished_at,
    func.substr(Run.executive_summary, 1, 600).label("executive_summary"),
    func.substr(Run.error, 1, 300).label("error"),
)
# The ids first, from the covering status index (ADR 0021): sorting the window's rows by
# finish time reads no run's row; then only the chosen rows are read.
_LATEST_COMPLETED_IDS = (
    select(Run.id)
    .where(
        Run.workspace_id == bindparam("workspace_id"),
        Run.status == RunStatus.completed.value,
        Run.created_at >= bindparam("since"),
        Run.id != bindparam("exclude"),
    )
    .order_by(Run.finished_at.desc())
    .limit(_LIMIT)
)
_LATEST_COMPLETED = (
    select(*_SUMMARY_COLUMNS)
    .where(Run.id.in_(_LATEST_COMPLETED_IDS.scalar_subquery()))
    .order_by(Run.finished_at.desc())
)
_FAILED = (
    select(*_SUMMARY_COLUMNS)
    .where(
        Run.workspace_id == bindparam("workspace_id"),
        Run.created_at >= bindparam("since"),
        Run.status == RunStatus.failed.value,
    )
    .order_by(Run.created_at.desc())
    .limit(_LIMIT)
)
_PENDING_APPROVAL = (
    select(*_SUMMARY_COLUMNS)
    .where(
        Run.workspace_id == bindparam("workspace_id"),
        Run.status == RunStatus.pending_approval.value,
    )
    .order_by(Run.created_at)
)


def list_latest_completed(
    session: Session,
    workspace_id: uuid.UUID,
    *,
    since: datetime,
    limit: int = 10,
    exclude_run_id: uuid.UUID | None = None,
) -> Sequence[Row[Any]]:
    """Summaries (``_SUMMARY_COLUMNS``) of the latest completed runs, newest first."""
    params = {
        "workspace_id": workspace_id,
        "since": since,
        "exclude": exclude_run_id or _NO_RUN,
        "limit": limit,
    }
    return session.execute(_LATEST_COMPLETED, params).all()


def list_failed(
    session: Session, workspace_id: uuid.UUID, *, since: datetime, limit: int = 20
) -> Sequence[Row[Any]]:
    """Summaries of the failed runs created since ``since``, newest first."""
    params = {"workspace_id": workspace_id, "since": since, "limit": limit}
    return session.execute(_FAILED, params).all()


# Built once: read by the failures fact of every run that gathers it.
_FAILED_COUNTS = (
    select(
        Run.run_type,
        Run.platform_key,
        func.sum(case((Run.created_at >= bindparam("day_since"), 1), else_=0)).label("last_day"),
        func.count(Run.id).label("since"),
    )
    .where(
        Run.workspace_id == bindparam("workspace_id"),
        Run.created_at >= bindparam("since"),
        Run.status == RunStatus.failed.value,
    )
    .group_by(Run.run_type, Run.platform_key)
)


def count_failed(
    session: Session, workspace_id: uuid.UUID, *, since: datetime, day_since: datetime
) -> Sequence[Row[Any]]:
    """Failed runs per (run_type, platform_key): ``since`` (the column ``since``) and since
    ``day_since`` (``last_day``) — exact counts, however many there are, in one query."""
    params = {"workspace_id": workspace_id, "since": since, "day_since": day_since}
    return session.execute(_FAILED_COUNTS, params).all()


def list_pending_approval(session: Session, workspace_id: uuid.UUID) -> Sequence[Row[Any]]:
    """Summaries of the runs waiting for an owner, oldest first."""
    return session.execute(_PENDING_APPROVAL, {"workspace_id": workspace_id}).all()


def get_agent_stats(
    session: Session, workspace_id: uuid.UUID, *, since: datetime
) -> list[dict[str, Any]]:
    """Per agent since ``since``: runs, completed, failed, success rate, cost, mean duration."""
    rows = session.execute(
        select(
            Run.agent,
            func.count(Run.id),
            func.sum(func.cast(Run.status == RunStatus.completed.value, type_=Integer)),
            func.sum(func.cast(Run.status == RunStatus.failed.value, type_=Integer)),
            func.sum(func.coalesce(Run.actual_cost, 0.0)),
            func.avg(Run.duration_ms),
        )
        .where(Run.workspace_id == workspace_id, Run.created_at >= since)
        .group_by(Run.agent)
        .order_by(Run.agent)
    ).all()
    out = []
    for agent, total, done, failed, cost, avg_ms in rows:
        done, failed = int(done or 0), int(failed or 0)
        finished = done + failed
        out.append(
            {
                "agent": agent,
                "runs": int(total),
                "completed": done,
                "failed": failed,
                "success_rate": round(done / finished, 3) if finished else None,
                "cost_eur": round(float(cost or 0.0), 4),
                "avg_duration_ms": int(avg_ms) if avg_ms is not None else None,
            }
        )
    return out


def import_run_record(
    session: Session,
    workspace_id: uuid.UUID,
    registry: Registry,
    *,
    run_type: str,
    status: RunStatus,
    created_at: datetime,
    requested_via: str,
    platform_key: str | None = None,
    executive_summary: str | None = None,
    error: str | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    actual_cost: float | None = None,
    duration_ms: int | None = None,
    model_used: str | None = None,
) -> Run:
    """Record a finished run from elsewhere (history import, demo data): no execution."""
    if status not in (RunStatus.completed, RunStatus.failed, RunStatus.cancelled):
        raise InvalidInput("only finished runs can be imported", details={"field": "status"})
    spec = registry.get(run_type)
    finished = created_at + timedelta(milliseconds=duration_ms or 0)
    run = Run(
        workspace_id=workspace_id,
        run_type=run_type,
        agent=spec.agent,
        platform_key=platform_key,
        params={},
        status=status.value,
        requested_via=requested_via,
        model_requested=spec.model,
        model_used=model_used,
        estimated_cost=spec.estimated_cost_eur,
        actual_cost=actual_cost,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        duration_ms=duration_ms,
        executive_summary=executive_summary,
        error=error,
        output={
            "executive_summary": executive_summary,
            "sections": [{"title": "Summary", "content": executive_summary}],
        }
        if executive_summary
        else None,
        created_at=created_at,
        updated_at=finished,
        started_at=created_at,
        finished_at=finished,
    )
    session.add(run)
    session.flush()
    event = {
        RunStatus.completed: ("run.completed", LogLevel.info),
        RunStatus.failed: ("run.failed", LogLevel.error),
        RunStatus.cancelled: ("run.cancelled", LogLevel.warn),
    }[status]
    logs.create_log(
        session,
        created_at=finished,
        message=event[0],
        level=event[1],
        source=LogSource.executive_run,
        workspace_id=workspace_id,
        run_id=run.id,
        metadata={
            "run_type": run_type,
            "platform_key": platform_key,
            "model": model_used,
            "duration_ms": duration_ms,
            "cost_estimate": spec.estimated_cost_eur,
            "error_message": error,
            "imported_via": requested_via,
        },
    )
    return run


def reap_stuck_runs(
    session: Session,
    registry: Registry,
    *,
    heartbeat_timeout: timedelta,
    grace: timedelta = timedelta(seconds=30),
    limit: int = 200,
) -> list[tuple[Run, str]]:
    """Fail running runs whose worker is gone or whose time is up; returns (run, reason).

    A reaped run is failed, not re-queued: whether the model was called is unknown, and a
    retry is an explicit, logged decision (``retry_run``).
    """
    now = clock.now()
    reaped: list[tuple[Run, str]] = []
    running = session.scalars(
        select(Run)
        .where(Run.status == RunStatus.running.value)
        .order_by(Run.updated_at)
        .limit(limit)
    ).all()
    for run in running:
        beat = run.heartbeat_at or run.started_at or run.updated_at
        timeout = (
            timedelta(seconds=registry.run_types[run.run_type].timeout_seconds)
            if run.run_type in registry.run_types
            else timedelta(hours=1)
        )
        if now - beat > heartbeat_timeout:
            seconds = int((now - beat).total_seconds())
            reason = f"worker lost: no heartbeat for {seconds} s"
        elif (
            # An act phase lasts as long as its work (a campaign, its audience): while its
            # worker beats, it is alive; it checks for a cancel between deliveries.
            run.phase != "act"
            and run.started_at is not None
            and now - run.started_at > timeout + grace
        ):
            reason = f"timeout: still running after {int(timeout.total_seconds())} s"
        else:
            continue
        try:
            with session.begin_nested():
                transition(
                    session,
                    run,
                    RunStatus.failed,
                    values={"error": reason},
                    log_metadata={"error_message": reason, "reaped": True},
                    source=LogSource.system,
                )
        except InvalidTransition:  # finished meanwhile
            continue
        reaped.append((run, reason))
    return reaped


def list_undispatched(
    session: Session, *, redispatch_after: timedelta, limit: int = 500
) -> list[uuid.UUID]:
    """Queued runs the broker never accepted, or accepted long ago with no claim since."""
    stale = clock.now() - redispatch_after
    return list(
        session.scalars(
            select(Run.id)
            .where(
                Run.status == RunStatus.queued.value,
                or_(Run.dispatched_at.is_(None), Run.dispatched_at < stale),
            )
            .order_by(Run.created_at)
            .limit(limit)
        )
    )


def mark_dispatched(session: Session | Connection, run_ids: list[uuid.UUID]) -> None:
    """The broker accepted these runs' tasks (outbox bookkeeping; status unchanged)."""
    if not run_ids:
        return
    session.execute(
        update(Run)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.queued.value)
        .values(dispatched_at=clock.now(), dispatch_attempts=Run.dispatch_attempts + 1)
        .execution_options(synchronize_session=False)
    )
