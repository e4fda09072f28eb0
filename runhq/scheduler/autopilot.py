"""The autopilot: every few minutes it decides which jobs run now, and journals why.

With a model, the model sees the schedules, recent runs, failures, spend vs budget and the
Paris hour, and answers ``{jobs_to_run, reasoning, next_check_in_minutes}``. Its answer only
proposes: every job then passes the same hard checks as any run (known job, anti-double-run,
approval, budget) and what is refused is journalled with the reason. With no model, a
deterministic policy decides: jobs due by cron and not run since. Every cycle writes one
``autopilot.decision`` log line — the decision journal.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
from sqlalchemy import select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.auth.service import require_role
from runhq.costs import service as costs
from runhq.errors import BudgetExceeded, InvalidInput
from runhq.llm.gateway import Gateway, ModelUnavailable
from runhq.llm.output import OutputInvalid
from runhq.logs import service as logs
from runhq.logs.models import StructuredLog
from runhq.logs.schemas import LogSource
from runhq.pagination import fetch_page
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.service import Notifier
from runhq.scheduler.models import AutopilotSettings, Schedule
from runhq.scheduler.schemas import Decision
from runhq.scheduler.service import due_firing, list_schedules, start_scheduled_run

DECISION = "autopilot.decision"
# Who the autopilot's model calls are billed to (model_usage.source).
AUTOPILOT_SOURCE = "autopilot"
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jobs_to_run", "reasoning", "next_check_in_minutes"],
    "properties": {
        "jobs_to_run": {"type": "array", "items": {"type": "string"}, "maxItems": 50},
        "reasoning": {"type": "string", "minLength": 1, "maxLength": 4000},
        "next_check_in_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
    },
}
_ANSWER = jsonschema.Draft202012Validator(ANSWER_SCHEMA)
SYSTEM_PROMPT = (
    "You are the autopilot of an AI operations HQ. Every few minutes you decide which "
    "scheduled jobs should run now. Favour jobs that are due, avoid running a job that ran "
    "recently or is still running, hold back expensive jobs when the budget is nearly spent, "
    "and prefer business hours (Europe/Paris) for reports people read. You only propose: "
    "hard checks (approval, budget, duplicates) are applied after you. Answer with ONE JSON "
    'object: {"jobs_to_run": [job_key, ...], "reasoning": "...", '
    '"next_check_in_minutes": integer}.'
)


def parse_answer(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text.strip().removeprefix("```json").strip("`").strip())
    except json.JSONDecodeError as exc:
        raise OutputInvalid(f"not valid JSON ({exc.msg})") from None
    errors = sorted(_ANSWER.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        raise OutputInvalid(f"does not match the answer schema at {where}: {errors[0].message}")
    assert isinstance(value, dict)  # noqa: S101 - the schema says object
    return value


# --- settings ------------------------------------------------------------------------------


def get_autopilot(
    session: Session, workspace_id: uuid.UUID, default_interval: int
) -> AutopilotSettings:
    row = session.scalar(
        select(AutopilotSettings).where(AutopilotSettings.workspace_id == workspace_id)
    )
    if row is None:
        row = AutopilotSettings(
            workspace_id=workspace_id,
            enabled=False,
            interval_minutes=default_interval,
            updated_at=clock.now(),
        )
    return row


def set_autopilot(
    session: Session,
    actor: Actor,
    *,
    enabled: bool,
    interval_minutes: int | None,
    default_interval: int,
) -> AutopilotSettings:
    require_role(actor, Role.admin, "switching the autopilot")
    row = get_autopilot(session, actor.workspace_id, default_interval)
    if row.id is None:
        session.add(row)
    if interval_minutes is not None:
        if not 1 <= interval_minutes <= 1440:
            raise InvalidInput(
                "interval_minutes must be 1 to 1440", details={"field": "interval_minutes"}
            )
        row.interval_minutes = interval_minutes
    if enabled and not row.enabled:
        row.next_cycle_at = clock.now()  # first cycle at the next scheduler tick
    row.enabled = enabled
    row.updated_at = clock.now()
    logs.create_log(
        session,
        message="autopilot.enabled" if enabled else "autopilot.disabled",
        source=LogSource.autopilot,
        workspace_id=actor.workspace_id,
        metadata={"by": str(actor.person), "interval_minutes": row.interval_minutes},
    )
    session.flush()
    return row


def list_decisions(
    session: Session, workspace_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[StructuredLog], str | None]:
    stmt = select(StructuredLog).where(
        StructuredLog.workspace_id == workspace_id, StructuredLog.message == DECISION
    )
    return fetch_page(
        session, stmt, StructuredLog.created_at, StructuredLog.id, cursor=cursor, limit=limit
    )


def read_decision(row: StructuredLog, *, snapshot: bool = False) -> Decision:
    """A journal line as a decision (what was proposed, accepted, refused and why);
    ``snapshot``: with the state it was decided on."""
    meta = row.meta
    return Decision(
        id=row.id,
        created_at=row.created_at,
        mode=meta.get("mode", "?"),
        jobs_to_run=meta.get("jobs_to_run", []),
        accepted=meta.get("accepted", []),
        rejected=meta.get("rejected", []),
        reasoning=meta.get("reasoning", ""),
        paris_hour=meta.get("paris_hour", 0),
        next_check_in_minutes=meta.get("next_check_in_minutes", 0),
        run_ids=meta.get("run_ids", []),
        awaiting_approval=meta.get("awaiting_approval", []),
        error=meta.get("error"),
        model_refused=meta.get("model_refused"),
        model_call=meta.get("model_call"),
        snapshot=meta.get("snapshot") if snapshot else None,
    )


# --- one cycle -----------------------------------------------------------------------------


def _snapshot(
    session: Session, workspace_id: uuid.UUID, schedules: list[Schedule], now: datetime, tz: str
) -> dict[str, Any]:
    failed = runs.list_failed(session, workspace_id, since=now - timedelta(hours=24), limit=10)
    report = costs.get_cost_report(session, workspace_id, tz=tz)
    stats = runs.get_recent_run_stats(session, workspace_id, since=now - timedelta(days=1))
    return {
        "now": now.isoformat(),
        "paris_hour": now.astimezone(ZoneInfo("Europe/Paris")).hour,
        "schedules": [
            {
                "job_key": s.job_key,
                "run_type": s.run_type,
                "platform_key": s.platform_key,
                "cron": s.cron,
                "timezone": s.timezone,
                "enabled": s.enabled,
                "last_fired_at": s.last_fired_at.isoformat() if s.last_fired_at else None,
                "due": due_firing(s, now) is not None,
            }
            for s in schedules
        ],
        "runs_last_24h": stats,
        "failures_last_24h": [
            {"run_type": r.run_type, "platform_key": r.platform_key, "error": (r.error or "")[:200]}
            for r in failed
        ],
        "spend": {
            "month": report.month,
            "total_eur": report.total_cost,
            "budgets": [b.model_dump() for b in report.budgets],
        },
    }


@dataclass
class ModelCall:
    """What the autopilot's model call consumed (billed as model usage outside runs)."""

    model: str
    tokens_in: int
    tokens_out: int
    cost_eur: float


def _propose(
    gateway: Gateway,
    registry: Registry,
    snapshot: dict[str, Any],
    interval: int,
    refusal: str | None,
) -> tuple[str, list[str], str, int, str | None, ModelCall | None]:
    """(mode, jobs, reasoning, next_check_in_minutes, error, model call)."""
    if gateway.offline or refusal:
        due = [s["job_key"] for s in snapshot["schedules"] if s["enabled"] and s["due"]]
        why = f"model not called: {refusal}" if refusal else "no model configured"
        return (
            "deterministic",
            due,
            f"Deterministic policy ({why}): jobs due by cron and not run "
            f"since: {', '.join(due) or 'none'}.",
            interval,
            None,
            None,
        )
    model = registry.run_types["DAILY_EXECUTIVE_BRIEF"].model
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "State (JSON):\n" + json.dumps(snapshot, default=str)},
    ]
    try:
        completion = gateway.complete(
            model=model,
            fallback_model=None,
            messages=messages,
            deadline=time.monotonic() + 120,
            parse=parse_answer,
        )
    except ModelUnavailable as exc:
        # What the unusable answers consumed is billed all the same.
        spent = (
            ModelCall(exc.model or model, exc.tokens_in, exc.tokens_out, exc.cost)
            if exc.tokens_in or exc.tokens_out or exc.cost
            else None
        )
        return (
            "model",
            [],
            f"No decision: the model's answer was unusable ({exc}).",
            interval,
            str(exc),
            spent,
        )
    answer = completion.output
    return (
        "model",
        list(dict.fromkeys(answer["jobs_to_run"])),
        answer["reasoning"],
        int(answer["next_check_in_minutes"]),
        None,
        ModelCall(
            completion.model_used, completion.tokens_in, completion.tokens_out, completion.cost_eur
        ),
    )


@dataclass
class CycleInput:
    workspace_id: uuid.UUID
    now: datetime
    interval_minutes: int
    snapshot: dict[str, Any]
    # Why the model may not be called this cycle (the global budget is spent), if so.
    model_refusal: str | None = None


@dataclass
class Proposal:
    mode: str
    jobs: list[str]
    reasoning: str
    next_check_in_minutes: int
    error: str | None
    model_call: ModelCall | None = None


def prepare_cycle(
    session: Session, workspace_id: uuid.UUID, *, tz: str, default_interval: int
) -> CycleInput | None:
    """Read the state a cycle decides on (None if the autopilot is off)."""
    settings = get_autopilot(session, workspace_id, default_interval)
    if not settings.enabled:
        return None
    now = clock.now()
    schedules = list_schedules(session, workspace_id)
    refusal = None
    try:
        # The autopilot's own model calls count in the global budget: once it is spent,
        # the cycle decides by the deterministic policy instead of calling the model.
        costs.check_budget(session, workspace_id, agent=AUTOPILOT_SOURCE, estimate=0.0, tz=tz)
    except BudgetExceeded as exc:
        refusal = exc.message
    return CycleInput(
        workspace_id=workspace_id,
        now=now,
        interval_minutes=settings.interval_minutes,
        snapshot=_snapshot(session, workspace_id, schedules, now, tz),
        model_refusal=refusal,
    )


def propose_jobs(gateway: Gateway, registry: Registry, cycle: CycleInput) -> Proposal:
    """Ask the model (or the deterministic policy). No database access: the caller holds
    no transaction during the model call."""
    mode, jobs, reasoning, next_check, error, call = _propose(
        gateway, registry, cycle.snapshot, cycle.interval_minutes, cycle.model_refusal
    )
    return Proposal(mode, jobs, reasoning, next_check, error, call)


def record_model_call(session: Session, cycle: CycleInput, proposal: Proposal) -> None:
    """Bill the cycle's model call, if it made one. Separate from ``apply_cycle``: the money
    is spent even when the decision is then refused (a leader that lost its lease)."""
    call = proposal.model_call
    if call is not None:
        costs.create_model_usage(
            session,
            cycle.workspace_id,
            source=AUTOPILOT_SOURCE,
            model=call.model,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            cost_eur=call.cost_eur,
        )


def apply_cycle(
    session: Session,
    registry: Registry,
    cycle: CycleInput,
    proposal: Proposal,
    *,
    stuck_after: timedelta,
    tz: str,
    default_interval: int,
    notify: Notifier | None,
) -> StructuredLog:
    """Pass every proposed job through the hard checks, start the accepted ones, journal."""
    settings = get_autopilot(session, cycle.workspace_id, default_interval)
    schedules = list_schedules(session, cycle.workspace_id)
    by_key = {s.job_key: s for s in schedules}
    accepted: list[str] = []
    rejected: list[dict[str, str]] = []
    run_ids: list[str] = []
    awaiting: list[str] = []
    now = cycle.now
    for job_key in proposal.jobs:
        schedule = by_key.get(job_key)
        if schedule is None:
            rejected.append({"job_key": job_key, "reason": "unknown job: no such schedule"})
            continue
        if not schedule.enabled:
            rejected.append({"job_key": job_key, "reason": "schedule is disabled"})
            continue
        firing = start_scheduled_run(
            session,
            registry,
            schedule,
            at=now,
            via="autopilot",
            stuck_after=stuck_after,
            tz=tz,
            notify=notify,
        )
        if firing.skipped:
            rejected.append({"job_key": job_key, "reason": firing.skipped})
            continue
        accepted.append(job_key)
        run_ids.append(str(firing.run_id))
        if registry.run_types[schedule.run_type].requires_approval:
            # Started, not carried out: it waits in pending_approval for an owner.
            awaiting.append(job_key)
    next_check = max(1, min(proposal.next_check_in_minutes, 1440))
    call = proposal.model_call
    if settings.id is not None and settings.enabled:
        settings.last_cycle_at = now
        settings.next_cycle_at = now + timedelta(minutes=next_check)
    entry_id = logs.create_log(
        session,
        message=DECISION,
        source=LogSource.autopilot,
        workspace_id=cycle.workspace_id,
        metadata={
            "mode": proposal.mode,
            "jobs_to_run": proposal.jobs,
            "accepted": accepted,
            "rejected": rejected,
            "run_ids": run_ids,
            "awaiting_approval": awaiting,
            "reasoning": proposal.reasoning,
            "paris_hour": cycle.snapshot["paris_hour"],
            "next_check_in_minutes": next_check,
            "error": proposal.error,
            "model_refused": cycle.model_refusal,
            "model_call": asdict(call) if call is not None else None,
            "snapshot": cycle.snapshot,
        },
    )
    session.flush()
    entry = session.get(StructuredLog, entry_id)
    assert entry is not None  # noqa: S101 - just inserted
    return entry


def run_cycle(
    session: Session,
    registry: Registry,
    gateway: Gateway,
    workspace_id: uuid.UUID,
    *,
    stuck_after: timedelta,
    tz: str,
    default_interval: int,
    notify: Notifier | None,
) -> StructuredLog | None:
    """One whole cycle in the caller's transaction (the scheduler splits it around the
    model call; see ``runhq.scheduler.tasks``)."""
    cycle = prepare_cycle(session, workspace_id, tz=tz, default_interval=default_interval)
    if cycle is None:
        return None
    proposal = propose_jobs(gateway, registry, cycle)
    record_model_call(session, cycle, proposal)
    return apply_cycle(
        session,
        registry,
        cycle,
        proposal,
        stuck_after=stuck_after,
        tz=tz,
        default_interval=default_interval,
        notify=notify,
    )


def list_due_cycles(session: Session, *, limit: int = 100) -> list[uuid.UUID]:
    """Workspaces whose autopilot is on and due for a cycle."""
    now = clock.now()
    return list(
        session.scalars(
            select(AutopilotSettings.workspace_id)
            .where(
                AutopilotSettings.enabled.is_(True),
                (AutopilotSettings.next_cycle_at.is_(None))
                | (AutopilotSettings.next_cycle_at <= now),
            )
            .limit(limit)
        )
    )
