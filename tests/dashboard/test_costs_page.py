"""The AI costs page: figures equal to the service's with a frozen clock, never NaN, the month
picker, bad months, budget bars, both languages, and a bounded number of queries."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq.auth.models import Role
from runhq.clock import FrozenClock
from runhq.costs import service as costs
from runhq.dashboard.costs_page import bar_class
from runhq.i18n import Translator
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements
from tests.dashboard.conftest import assert_no_blank_figures, log_in

NBSP = "\u00a0"
#: Mid-November 2026 in Paris: "this month" is 2026-11.
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
_ROW_RE = re.compile(r'<li class="cost-bar" data-key="([A-Z_]+)">(.*?)</li>', re.S)
_VALUE_RE = re.compile(r'data-value="([a-z]+)"[^>]*>([^<]*)<')


@pytest.fixture(autouse=True)
def frozen() -> Iterator[FrozenClock]:
    with FrozenClock(NOW) as clock:
        yield clock


def _record(
    session: Session,
    runtime: Runtime,
    team: Team,
    run_type: str,
    cost: float | None,
    *,
    at: datetime = NOW - timedelta(days=2),
    status: RunStatus = RunStatus.completed,
) -> None:
    runs.import_run_record(
        session,
        team.workspace_id,
        runtime.registry,
        run_type=run_type,
        status=status,
        created_at=at,
        requested_via="test",
        actual_cost=cost,
        duration_ms=1000,
    )


def _history(session: Session, runtime: Runtime, team: Team) -> None:
    for run_type, cost in [
        ("SEO_AUDIT", 0.20),
        ("SEO_AUDIT", 0.10),
        ("CODE_REVIEW", 1.25),
        ("FINANCIAL_REPORT", None),  # failed before costing anything
    ]:
        status = RunStatus.failed if cost is None else RunStatus.completed
        _record(session, runtime, team, run_type, cost, status=status)
    _record(session, runtime, team, "SEO_AUDIT", 9.0, at=datetime(2026, 10, 20, tzinfo=UTC))
    session.commit()


def _page(client: TestClient, team: Team, role: Role = Role.owner, **params: str) -> str:
    log_in(client, team.emails[role])
    r = client.get("/costs", params=params)
    assert r.status_code == 200, r.text
    return r.text


def _rows(html: str) -> dict[str, dict[str, str]]:
    """Per run type (data-key) of the run-type section: its data-value texts."""
    section = html.split('data-section="types"', 1)[1].split("</section>", 1)[0]
    return {
        key: {name: value.strip() for name, value in _VALUE_RE.findall(body)}
        for key, body in _ROW_RE.findall(section)
    }


def _value(html: str, name: str) -> str:
    match = re.search(rf'data-value="{name}"[^>]*>([^<]*)<', html)
    assert match, name
    return re.sub(r"[ \t\n]+", " ", match.group(1)).strip()


def test_the_figures_are_the_services(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    _history(session, runtime, team)
    report = costs.get_cost_report(session, team.workspace_id, tz=runtime.settings.timezone)
    assert report.month == "2026-11"
    html = _page(client, team)
    fr = Translator("fr")
    assert _value(html, "total") == fr.money(report.total_cost) == f"1,55{NBSP}€"
    assert _value(html, "estimated") == fr.money(report.estimated_total)
    assert _value(html, "average") == fr.money(report.total_cost / report.runs)
    assert "4 runs" in html
    assert "novembre 2026" in html
    rows = _rows(html)
    assert list(rows) == [line.key for line in report.by_run_type]  # most expensive first
    for line in report.by_run_type:
        row = rows[line.key]
        assert row["total"] == fr.money(line.total_cost)
        assert row["runs"] == fr.tn("costs.bar.runs", line.runs)
        assert row["average"] == f"moyenne {fr.money(line.total_cost / line.runs)}"
    assert rows["SEO_AUDIT"]["runs"] == "2 runs"
    assert rows["SEO_AUDIT"]["average"] == f"moyenne 0,15{NBSP}€"
    assert rows["FINANCIAL_REPORT"]["total"] == f"0,00{NBSP}€"
    # Labels in the page's language, tooltips with runs and average cost.
    assert runtime.registry.get("SEO_AUDIT").label.fr in html
    assert f"2 runs · coût moyen 0,15{NBSP}€" in html
    assert 'class="cost-bar__fill bar--100"' in html  # CODE_REVIEW, the largest
    assert_no_blank_figures(html)


def test_english(client: TestClient, session: Session, runtime: Runtime, team: Team) -> None:
    _history(session, runtime, team)
    client.cookies.set("runhq_lang", "en")
    html = _page(client, team)
    assert '<html lang="en">' in html
    assert _value(html, "total") == "€1.55"
    assert "November 2026" in html
    assert runtime.registry.get("SEO_AUDIT").label.en in html
    assert "2 runs · average cost €0.15" in html


def test_another_month_and_the_picker(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    _history(session, runtime, team)
    html = _page(client, team, month="2026-10")
    assert _value(html, "total") == f"9,00{NBSP}€"
    assert 'href="/costs?month=2026-09"' in html
    assert 'href="/costs?month=2026-11"' in html
    assert 'data-month-link="current"' in html
    assert 'name="month" type="month" value="2026-10"' in html
    assert "<label" in html
    assert 'for="costs-month"' in html
    current = _page(client, team)
    assert 'data-month-link="current"' not in current
    assert 'href="/costs?month=2026-12"' in current  # a future month is just empty


@pytest.mark.parametrize("month", ["2026-12", "2031-01", "1970-01"])
def test_a_month_without_runs_is_zero_never_nan(
    client: TestClient, session: Session, runtime: Runtime, team: Team, month: str
) -> None:
    _history(session, runtime, team)
    costs.set_budget(session, team.workspace_id, scope="global", monthly_limit_eur=0.0)
    costs.set_budget(session, team.workspace_id, scope="CTO", monthly_limit_eur=20.0)
    session.commit()
    html = _page(client, team, month=month)
    assert _value(html, "total") == f"0,00{NBSP}€"
    assert _value(html, "estimated") == f"0,00{NBSP}€"
    assert _value(html, "average") == "—"
    assert "0 run" in html
    assert 'data-empty="types"' in html
    assert 'data-section="agents"' not in html
    assert not re.search(r"\b(NaN|nan|None|inf|Infinity)\b", html)
    assert 'data-state="ok"' in html  # both budgets untouched
    assert f"0{NBSP}%" in html


@pytest.mark.parametrize(
    "month", ["2026-13", "2026-1", "november", "0000-01", "9999-12", "2026-11-01", "x" * 500]
)
def test_a_bad_month_is_a_clear_422(client: TestClient, team: Team, month: str) -> None:
    log_in(client, team.emails[Role.viewer])
    r = client.get("/costs", params={"month": month})
    assert r.status_code == 422, r.text
    assert "Mois invalide" in r.text
    assert "AAAA-MM" in r.text
    assert "2026-11" in r.text  # the example: this month
    client.cookies.set("runhq_lang", "en")
    r = client.get("/costs", params={"month": month})
    assert r.status_code == 422
    assert "Invalid month" in r.text


def test_the_api_refuses_months_out_of_range_too(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    from tests.conftest import bearer

    for month in ("0000-01", "9999-12"):
        r = client.get(
            "/api/v1/costs", params={"month": month}, headers=bearer(runtime, team.viewer)
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["field"] == "month"


def test_budget_bars(client: TestClient, session: Session, runtime: Runtime, team: Team) -> None:
    _history(session, runtime, team)  # CTO: CODE_REVIEW 1.25 ; CMO: SEO_AUDIT 0.30
    costs.set_budget(session, team.workspace_id, scope="global", monthly_limit_eur=10.0)
    costs.set_budget(session, team.workspace_id, scope="CTO", monthly_limit_eur=1.0)
    cfo = runtime.registry.get("FINANCIAL_REPORT").agent
    costs.set_budget(session, team.workspace_id, scope=cfo, monthly_limit_eur=5.0)
    # A run not finished yet reserves its estimate (it counts in the bar, said apart).
    queued, _ = runs.create_run(
        session, team.operator, runtime.registry, run_type="FINANCIAL_REPORT"
    )
    assert queued.status == RunStatus.queued
    session.commit()
    statuses = {
        b.scope: b for b in costs.get_budget_statuses(session, team.workspace_id, "Europe/Paris")
    }
    estimate = runtime.registry.get("FINANCIAL_REPORT").estimated_cost_eur
    assert statuses[cfo].reserved_eur == statuses["global"].reserved_eur == estimate
    html = _page(client, team, Role.viewer)
    budgets = {
        scope: body
        for scope, body in re.findall(
            r'<li class="budget[^"]*" data-scope="([A-Za-z]+)"[^>]*>(.*?)</li>', html, re.S
        )
    }
    assert set(budgets) == {"global", "CTO", cfo}
    g = budgets["global"]
    assert re.search(r'data-scope="global" data-state="ok"', html)
    fr = Translator("fr")
    used = 1.55 + estimate
    assert fr.percent(used / 10, 1) in g
    assert f'<meter class="budget__meter" min="0" max="10.00" value="{used:.2f}"' in g
    assert 'aria-labelledby="budget-global-label"' in g
    assert f"{fr.money(used)} engagés sur 10,00{NBSP}€" in g
    assert f"Dépensé{NBSP}: 1,55{NBSP}€" in g
    assert f"réservé par les runs en cours{NBSP}: {fr.money(estimate)}" in g
    assert "Budget global" in g
    cto = budgets["CTO"]
    assert re.search(r'data-scope="CTO" data-state="over"', html)
    assert f"125{NBSP}%" in cto
    assert 'max="1.00" value="1.00"' in cto  # the meter is full, the text says 125 %
    assert "Budget dépassé" in cto
    assert "CTO" in cto
    assert re.search(rf'data-scope="{cfo}" data-state="ok"', html)
    assert fr.percent(estimate / 5, 0) in budgets[cfo]
    assert f"réservé par les runs en cours{NBSP}: {fr.money(estimate)}" in budgets[cfo]


def test_no_budget_says_how_to_set_one(client: TestClient, team: Team) -> None:
    html = _page(client, team)
    assert 'data-empty="budgets"' in html
    assert "runhq costs budget" in html


def test_bar_widths_are_buckets_of_five() -> None:
    assert bar_class(0, 10) == "bar--0"
    assert bar_class(10, 10) == "bar--100"
    assert bar_class(0.01, 10) == "bar--5"  # anything spent shows
    assert bar_class(3.3, 10) == "bar--35"
    assert bar_class(5, 0) == "bar--0"
    assert bar_class(math.nan, 10) == "bar--0"


def test_a_run_type_removed_from_the_registry_keeps_its_key(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    _record(session, runtime, team, "SEO_AUDIT", 0.5)
    session.commit()
    from sqlalchemy import update

    from runhq.runs.models import Run

    session.execute(update(Run).values(run_type="RETIRED_TYPE", agent="ZZZ"))
    session.commit()
    html = _page(client, team)
    assert "RETIRED_TYPE" in html
    assert "ZZZ" in html


def test_the_css_has_every_bar_width() -> None:
    from runhq.dashboard.pages import STATIC_DIR

    css = (STATIC_DIR / "pages" / "costs.css").read_text()
    for pct in range(0, 101, 5):
        assert f".bar--{pct} {{\n  width: {pct}%;" in css
    assert "style=" not in "".join(
        p.read_text() for p in (STATIC_DIR.parent / "templates").rglob("costs*.html")
    )


def _count(client: TestClient, db_engine: Engine, month: str) -> int:
    with counted_statements(db_engine) as statements:
        assert client.get("/costs", params={"month": month}).status_code == 200
    return len(statements)


def test_queries_do_not_grow_with_runs(
    client: TestClient, session: Session, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    costs.set_budget(session, team.workspace_id, scope="global", monthly_limit_eur=100.0)
    _record(session, runtime, team, "SEO_AUDIT", 0.1, at=datetime(2026, 9, 10, tzinfo=UTC))
    types = [k for k, s in runtime.registry.run_types.items() if not s.requires_approval]
    for i in range(50):
        _record(
            session,
            runtime,
            team,
            types[i % len(types)],
            0.01 * i,
            at=datetime(2026, 8, 1, tzinfo=UTC) + timedelta(hours=i),
        )
    session.commit()
    log_in(client, team.emails[Role.owner])
    one, fifty = _count(client, db_engine, "2026-09"), _count(client, db_engine, "2026-08")
    assert one == fifty
    assert one <= 16, one  # the month's model calls outside runs are one of them
    # Budgets for several agents are read together.
    for agent in ("CTO", "CMO", "CFO"):
        costs.set_budget(session, team.workspace_id, scope=agent, monthly_limit_eur=5.0)
    session.commit()
    assert _count(client, db_engine, "2026-08") == fifty


def test_model_calls_outside_runs_have_their_own_section(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    _history(session, runtime, team)
    for cost in (0.25, 0.05):
        costs.create_model_usage(
            session,
            team.workspace_id,
            source="autopilot",
            model="gemini-2.5-pro",
            tokens_in=1000,
            tokens_out=50,
            cost_eur=cost,
        )
    session.commit()
    report = costs.get_cost_report(session, team.workspace_id, tz=runtime.settings.timezone)
    html = _page(client, team)
    fr = Translator("fr")
    # The total has the calls; the estimate's gap and the average per run are the runs' own.
    assert _value(html, "total") == fr.money(report.total_cost) == f"1,85{NBSP}€"
    assert _value(html, "average") == fr.money((report.total_cost - 0.30) / report.runs)
    section = html[html.index('data-section="calls"') :]
    assert "Appels au modèle hors runs" in section
    assert "Autopilote" in section
    assert "2 appels" in section
    assert f"0,30{NBSP}€" in section
    assert 'data-value="estimated"' not in section  # a call has no estimate
    client.cookies.set("runhq_lang", "en")
    english = _page(client, team)
    assert "Model calls outside runs" in english
    assert "2 calls" in english


def test_no_model_calls_no_section(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    _history(session, runtime, team)
    assert 'data-section="calls"' not in _page(client, team)
