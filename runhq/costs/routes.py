"""/api/v1/costs: monthly cost report and budgets."""

from __future__ import annotations

from fastapi import APIRouter

from runhq.auth.models import Role
from runhq.auth.service import require_role
from runhq.costs import service
from runhq.costs.schemas import BudgetIn, BudgetStatus, CostReport
from runhq.errors import InvalidInput
from runhq.web.deps import ActorDep, RuntimeDep, SessionDep
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/costs", tags=["costs"], responses=ERROR_RESPONSES)


@router.get("", response_model=CostReport, summary="AI costs of a month (default: this one)")
def get_costs(
    runtime: RuntimeDep, session: SessionDep, actor: ActorDep, month: str | None = None
) -> CostReport:
    return service.get_cost_report(
        session, actor.workspace_id, tz=runtime.settings.timezone, month=month
    )


@router.get("/budgets", response_model=list[BudgetStatus], summary="Budgets and spend")
def list_budgets(runtime: RuntimeDep, session: SessionDep, actor: ActorDep) -> list[BudgetStatus]:
    return service.get_budget_statuses(session, actor.workspace_id, runtime.settings.timezone)


@router.put("/budgets", response_model=list[BudgetStatus], summary="Set a monthly budget (owner)")
def set_budget(
    body: BudgetIn, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
) -> list[BudgetStatus]:
    require_role(actor, Role.owner, "setting a budget")
    if body.scope != "global" and body.scope not in runtime.registry.agents:
        raise InvalidInput(
            f"scope: unknown agent {body.scope!r}; use 'global' or one of "
            f"{', '.join(sorted(runtime.registry.agents))}",
            details={"field": "scope"},
        )
    service.set_budget(
        session, actor.workspace_id, scope=body.scope, monthly_limit_eur=body.monthly_limit_eur
    )
    return service.get_budget_statuses(session, actor.workspace_id, runtime.settings.timezone)
