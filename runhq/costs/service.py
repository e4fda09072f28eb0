"""Monthly cost reports and budgets; the only writer of ``budgets``.

Spend is what finished runs cost (actual cost); runs not finished yet reserve their estimate,
so two concurrent requests cannot both slip under the limit unnoticed.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.costs.models import GLOBAL_SCOPE, Budget, ModelUsage
from runhq.costs.schemas import BudgetStatus, CostLine, CostReport
from runhq.db.compiled import Compiled
from runhq.errors import BudgetExceeded, InvalidInput
from runhq.runs.models import ACTIVE_STATUSES, Run, RunStatus

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
#: The months a report can be asked for.
MIN_YEAR, MAX_YEAR = 1970, 9998
# Runs that never reached a model (rejected) cost nothing; the others count.
_RAN = tuple(s.value for s in RunStatus if s != RunStatus.rejected)


def _num(value: float | None) -> float:
    """A displayable number: None and NaN become 0.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0.0
    return round(float(value), 6)


def month_bounds(month: str | None, tz: str) -> tuple[str, datetime, datetime]:
    """(YYYY-MM, start, end) of a month in the business time zone, as aware datetimes."""
    zone = ZoneInfo(tz)
    if month is None:
        local = clock.now().astimezone(zone)
        year, mon = local.year, local.month
    else:
        match = _MONTH_RE.match(month)
        if not match:
            raise InvalidInput(
                f"month must look like 2026-11, got {month!r}", details={"field": "month"}
            )
        year, mon = int(match.group(1)), int(match.group(2))
        if not MIN_YEAR <= year <= MAX_YEAR:
            # Beyond these, datetimes overflow (year 0, year 10000) instead of being a month.
            raise InvalidInput(
                f"month must be between {MIN_YEAR}-01 and {MAX_YEAR}-12, got {month!r}",
                details={"field": "month"},
            )
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return f"{year:04d}-{mon:02d}", start, end


# The month's runs that cost something, for one workspace. The statements below are built
# once (parameters bound per call): each is read by every run's context and every cost page,
# and building one costs more than running it.
_IN_MONTH = (
    Run.workspace_id == bindparam("workspace_id"),
    Run.created_at >= bindparam("start"),
    Run.created_at < bindparam("end"),
    # The statuses that ran, listed rather than "not the others": SQLite then reads each one's
    # rows of the month in the covering status index (ADR 0021) instead of the whole table.
    Run.status.in_(_RAN),
)
_LINES = (
    select(
        Run.run_type,
        Run.agent,
        func.count(Run.id),
        func.sum(func.coalesce(Run.actual_cost, 0.0)),
        func.sum(Run.estimated_cost),
    )
    .where(*_IN_MONTH)
    .group_by(Run.run_type, Run.agent)
)
_ACTIVE = [s.value for s in ACTIVE_STATUSES]
_SPENT = func.sum(case((Run.status.in_(_ACTIVE), 0.0), else_=func.coalesce(Run.actual_cost, 0.0)))
_RESERVED = func.sum(case((Run.status.in_(_ACTIVE), Run.estimated_cost), else_=0.0))
_SPEND = select(_SPENT, _RESERVED).where(*_IN_MONTH)
_SPEND_OF_AGENT = _SPEND.where(Run.agent == bindparam("agent"))
_SPEND_BY_AGENT = select(Run.agent, _SPENT, _RESERVED).where(*_IN_MONTH).group_by(Run.agent)

# Model calls outside runs (model_usage), the same month.
_USAGE_IN_MONTH = (
    ModelUsage.workspace_id == bindparam("workspace_id"),
    ModelUsage.created_at >= bindparam("start"),
    ModelUsage.created_at < bindparam("end"),
)
_USAGE_LINES = (
    select(ModelUsage.source, func.count(ModelUsage.id), func.sum(ModelUsage.cost_eur))
    .where(*_USAGE_IN_MONTH)
    .group_by(ModelUsage.source)
)
_USAGE_TOTAL = select(func.sum(ModelUsage.cost_eur)).where(*_USAGE_IN_MONTH)


def create_model_usage(
    session: Session,
    workspace_id: uuid.UUID,
    *,
    source: str,
    model: str,
    tokens_in: int,
    tokens_out: int,
    cost_eur: float,
) -> ModelUsage:
    """Record what a model call outside a run cost (it counts in reports and budgets)."""
    if not math.isfinite(cost_eur) or cost_eur < 0 or tokens_in < 0 or tokens_out < 0:
        raise InvalidInput(
            f"a model call costs a positive amount of tokens and euros, got {tokens_in} in, "
            f"{tokens_out} out, €{cost_eur}",
            details={"field": "cost_eur"},
        )
    usage = ModelUsage(
        workspace_id=workspace_id,
        source=source,
        model=model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_eur=cost_eur,
        created_at=clock.now(),
    )
    session.add(usage)
    return usage


def _usage_lines(
    session: Session, workspace_id: uuid.UUID, start: datetime, end: datetime
) -> list[CostLine]:
    """The month's model calls outside runs, by source."""
    rows = session.execute(
        _USAGE_LINES, {"workspace_id": workspace_id, "start": start, "end": end}
    ).all()
    totals = {str(source): [int(calls), _num(total), _num(total)] for source, calls, total in rows}
    return _cost_lines(totals)


def _usage_total(
    session: Session, workspace_id: uuid.UUID, start: datetime, end: datetime
) -> float:
    params = {"workspace_id": workspace_id, "start": start, "end": end}
    return _num(session.execute(_USAGE_TOTAL, params).scalar())


def _lines(
    session: Session, workspace_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[list[CostLine], list[CostLine]]:
    """The month's cost lines by run type and by agent, from one grouped scan."""
    rows = session.execute(_LINES, {"workspace_id": workspace_id, "start": start, "end": end}).all()
    by_type: dict[str, list[float]] = {}
    by_agent: dict[str, list[float]] = {}
    for run_type, agent, runs, total, estimated in rows:
        for totals, key in ((by_type, str(run_type)), (by_agent, str(agent))):
            acc = totals.setdefault(key, [0, 0.0, 0.0])
            acc[0] += int(runs)
            acc[1] += _num(total)
            acc[2] += _num(estimated)
    return _cost_lines(by_type), _cost_lines(by_agent)


def _cost_lines(totals: dict[str, list[float]]) -> list[CostLine]:
    """Most expensive first, then by name."""
    lines = [
        CostLine(
            key=key,
            runs=int(runs),
            total_cost=_num(total),
            average_cost=_num(total / runs if runs else 0.0),
            estimated_total=_num(estimated),
        )
        for key, (runs, total, estimated) in totals.items()
    ]
    return sorted(lines, key=lambda line: (-line.total_cost, line.key))


def _spend(
    session: Session,
    workspace_id: uuid.UUID,
    start: datetime,
    end: datetime,
    agent: str | None = None,
) -> tuple[float, float]:
    """(spent, reserved) this month, optionally for one agent."""
    params: dict[str, object] = {"workspace_id": workspace_id, "start": start, "end": end}
    if agent is None:
        spent, reserved = session.execute(_SPEND, params).one()
        # The workspace's spend includes its model calls outside runs (the autopilot).
        spent = _num(spent) + _usage_total(session, workspace_id, start, end)
    else:
        spent, reserved = session.execute(_SPEND_OF_AGENT, {**params, "agent": agent}).one()
    return _num(spent), _num(reserved)


_LIST_BUDGETS = (
    select(Budget).where(Budget.workspace_id == bindparam("workspace_id")).order_by(Budget.scope)
)


# Read before every run is created (on SQLite on the DBAPI cursor, ADR 0015).
_BUDGET_LIMITS = Compiled(
    select(Budget.scope, Budget.monthly_limit_eur).where(
        Budget.workspace_id == bindparam("workspace_id")
    )
)


def list_budgets(session: Session, workspace_id: uuid.UUID) -> list[Budget]:
    return list(session.scalars(_LIST_BUDGETS, {"workspace_id": workspace_id}))


def set_budget(
    session: Session, workspace_id: uuid.UUID, *, scope: str, monthly_limit_eur: float
) -> Budget:
    if not math.isfinite(monthly_limit_eur) or monthly_limit_eur < 0:
        raise InvalidInput(
            "monthly_limit_eur must be a positive number", details={"field": "monthly_limit_eur"}
        )
    budget = session.scalar(
        select(Budget).where(Budget.workspace_id == workspace_id, Budget.scope == scope)
    )
    if budget is None:
        budget = Budget(
            workspace_id=workspace_id, scope=scope, monthly_limit_eur=0.0, created_at=clock.now()
        )
        session.add(budget)
    budget.monthly_limit_eur = monthly_limit_eur
    budget.updated_at = clock.now()
    session.flush()
    return budget


def _spend_by_agent(
    session: Session, workspace_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, tuple[float, float]]:
    """(spent, reserved) this month per agent, from one grouped scan."""
    rows = session.execute(
        _SPEND_BY_AGENT, {"workspace_id": workspace_id, "start": start, "end": end}
    ).all()
    return {str(agent): (_num(spent), _num(reserved)) for agent, spent, reserved in rows}


def get_budget_statuses(
    session: Session,
    workspace_id: uuid.UUID,
    tz: str,
    month: str | None = None,
    *,
    outside_runs: float | None = None,
) -> list[BudgetStatus]:
    """Each budget's month. ``outside_runs``: the month's model calls outside runs, if the
    caller has them already (else read here, for the global budget)."""
    _, start, end = month_bounds(month, tz)
    budgets = list_budgets(session, workspace_id)
    if not budgets:
        return []
    # One scan for every budget, however many agents have one.
    by_agent = _spend_by_agent(session, workspace_id, start, end)
    statuses = []
    for budget in budgets:
        if budget.scope == GLOBAL_SCOPE:
            if outside_runs is None:
                outside_runs = _usage_total(session, workspace_id, start, end)
            spent = _num(sum(s for s, _ in by_agent.values()) + outside_runs)
            reserved = _num(sum(r for _, r in by_agent.values()))
        else:
            spent, reserved = by_agent.get(budget.scope, (0.0, 0.0))
        statuses.append(
            BudgetStatus(
                scope=budget.scope,
                monthly_limit_eur=_num(budget.monthly_limit_eur),
                spent_eur=spent,
                reserved_eur=reserved,
                remaining_eur=_num(max(budget.monthly_limit_eur - spent - reserved, 0.0)),
            )
        )
    return statuses


def check_budget(
    session: Session, workspace_id: uuid.UUID, *, agent: str, estimate: float, tz: str
) -> None:
    """Refuse (402) a run whose estimate would take this month past a budget."""
    _, start, end = month_bounds(None, tz)
    # Columns, not Budget objects: read before every run is created, usually to find none.
    limits = _BUDGET_LIMITS.all(session.connection(), {"workspace_id": workspace_id})
    for budget in limits:
        scope, limit = budget["scope"], budget["monthly_limit_eur"]
        if scope not in (GLOBAL_SCOPE, agent):
            continue
        spent, reserved = _spend(
            session, workspace_id, start, end, None if scope == GLOBAL_SCOPE else agent
        )
        if spent + reserved + estimate > limit + 1e-9:
            who = "the workspace" if scope == GLOBAL_SCOPE else f"agent {agent}"
            raise BudgetExceeded(
                f"monthly budget of {who} exceeded: €{spent:.2f} spent and €{reserved:.2f} "
                f"reserved of €{limit:.2f}; this run is estimated at "
                f"€{estimate:.2f}. Raise the budget or wait for next month.",
                details={
                    "scope": scope,
                    "monthly_limit_eur": limit,
                    "spent_eur": spent,
                    "reserved_eur": reserved,
                    "estimate_eur": estimate,
                },
            )


def get_cost_report(
    session: Session, workspace_id: uuid.UUID, *, tz: str, month: str | None = None
) -> CostReport:
    label, start, end = month_bounds(month, tz)
    by_type, by_agent = _lines(session, workspace_id, start, end)
    outside_runs = _usage_lines(session, workspace_id, start, end)
    return CostReport(
        month=label,
        total_cost=_num(sum(line.total_cost for line in [*by_type, *outside_runs])),
        estimated_total=_num(sum(line.estimated_total for line in by_type)),
        runs=sum(line.runs for line in by_type),
        by_run_type=by_type,
        by_agent=by_agent,
        model_calls=outside_runs,
        budgets=get_budget_statuses(
            session,
            workspace_id,
            tz,
            label,
            outside_runs=sum(line.total_cost for line in outside_runs),
        ),
    )
