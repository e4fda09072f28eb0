"""Model calls outside runs (the autopilot's) count in the month's total and the global
budget, not in an agent's; a call cannot cost a negative amount."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runhq.clock import FrozenClock
from runhq.costs import service as costs
from runhq.costs.models import ModelUsage
from runhq.errors import BudgetExceeded, InvalidInput
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team

NOW = datetime(2026, 10, 20, 9, tzinfo=UTC)


def _usage(session: Session, team: Team, cost: float) -> None:
    costs.create_model_usage(
        session,
        team.workspace_id,
        source="autopilot",
        model="gemini-2.5-pro",
        tokens_in=1200,
        tokens_out=80,
        cost_eur=cost,
    )


def test_model_calls_count_in_the_total_and_the_global_budget(
    session: Session, runtime: Runtime, team: Team
) -> None:
    agent = runtime.registry.run_types["SEO_AUDIT"].agent
    with FrozenClock(NOW):
        runs.import_run_record(
            session,
            team.workspace_id,
            runtime.registry,
            run_type="SEO_AUDIT",
            status=RunStatus.completed,
            created_at=NOW,
            requested_via="test",
            actual_cost=0.30,
            duration_ms=1000,
        )
        _usage(session, team, 0.25)
        _usage(session, team, 0.05)
        costs.set_budget(session, team.workspace_id, scope="global", monthly_limit_eur=0.62)
        costs.set_budget(session, team.workspace_id, scope=agent, monthly_limit_eur=0.35)
        report = costs.get_cost_report(session, team.workspace_id, tz="Europe/Paris")
        statuses = {
            b.scope: b
            for b in costs.get_budget_statuses(session, team.workspace_id, "Europe/Paris")
        }
        # Budgets are checked agent first: the agent's 0.30 + 0.04 fits its 0.35 (with the
        # calls it would not), the global 0.30 + 0.30 (calls) + 0.04 does not fit 0.62.
        with pytest.raises(BudgetExceeded) as refused:
            costs.check_budget(
                session, team.workspace_id, agent=agent, estimate=0.04, tz="Europe/Paris"
            )
    assert refused.value.details["scope"] == "global"
    assert report.total_cost == pytest.approx(0.60)
    assert report.runs == 1
    assert report.estimated_total == pytest.approx(
        runtime.registry.run_types["SEO_AUDIT"].estimated_cost_eur
    )
    [line] = report.model_calls
    assert (line.key, line.runs) == ("autopilot", 2)
    assert line.total_cost == pytest.approx(0.30)
    assert line.average_cost == pytest.approx(0.15)
    assert {b.scope: b.spent_eur for b in report.budgets} == {
        "global": pytest.approx(0.60),
        agent: pytest.approx(0.30),
    }
    assert statuses["global"].spent_eur == pytest.approx(0.60)
    assert statuses[agent].spent_eur == pytest.approx(0.30)


def test_calls_of_another_month_are_not_counted(session: Session, team: Team) -> None:
    with FrozenClock(datetime(2026, 9, 30, 21, 59, tzinfo=UTC)):  # 23:59 in Paris
        _usage(session, team, 1.0)
    with FrozenClock(NOW):
        report = costs.get_cost_report(session, team.workspace_id, tz="Europe/Paris")
    assert report.model_calls == []
    assert report.total_cost == 0.0


@pytest.mark.parametrize(
    ("tokens_in", "tokens_out", "cost"),
    [(-1, 0, 0.0), (0, -5, 0.0), (10, 10, -0.01), (10, 10, float("nan"))],
)
def test_a_call_cannot_cost_a_negative_amount(
    session: Session, team: Team, tokens_in: int, tokens_out: int, cost: float
) -> None:
    with pytest.raises(InvalidInput):
        costs.create_model_usage(
            session,
            team.workspace_id,
            source="autopilot",
            model="m",
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_eur=cost,
        )
    session.flush()
    assert session.scalar(select(func.count(ModelUsage.id))) == 0
