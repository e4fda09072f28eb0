"""The Briefing Room: its cards with real data, Stripe configured, unconfigured and failing,
each card failing alone, the sidebar badges, and a bounded number of queries."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.models import Role
from runhq.clock import FrozenClock
from runhq.dashboard import briefing
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements
from tests.dashboard.conftest import (
    add_platform,
    add_run,
    cards_of,
    log_in,
    run_daily_brief,
)
from tests.fakes.stripe_server import FakeStripe, make_subscription, price_item

NBSP = "\u00a0"
FAILED = "Impossible de charger ce module"


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


def _stripe_settings(fake: FakeStripe) -> dict[str, Any]:
    return {"stripe_api_key": fake.api_key, "stripe_base_url": fake.base_url}


def _briefing(client: TestClient, team: Team, role: Role = Role.owner) -> str:
    log_in(client, team.emails[role])
    r = client.get("/")
    assert r.status_code == 200, r.text
    return r.text


def test_an_empty_workspace_says_so_and_shows_no_fake_zero(client: TestClient, team: Team) -> None:
    cards = cards_of(_briefing(client, team))
    assert {k: state for k, (state, _) in cards.items()} == {
        "mrr": "unavailable",
        "agents": "ok",
        "uptime": "empty",
        "last_run": "empty",
        "brief": "empty",
    }
    mrr = cards["mrr"][1]
    assert "—" in mrr
    assert "Service indisponible" in mrr
    assert "0,00" not in mrr
    assert "NaN" not in mrr
    assert 'role="tooltip"' in mrr
    assert "Aucun run pour l&#39;instant." in cards["last_run"][1]
    assert "Aucun contrôle de santé" in cards["uptime"][1]
    assert "Moyenne" in cards["uptime"][1]
    assert "Brief exécutif quotidien" in cards["brief"][1]


def test_the_cards_show_the_workspace(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    add_run(session, team, runtime.registry, "CODE_REVIEW", ago=timedelta(days=2))  # CTO
    add_run(session, team, runtime.registry, "FINANCIAL_REPORT", ago=timedelta(hours=3))  # CFO
    add_run(session, team, runtime.registry, "SEO_AUDIT", ago=timedelta(days=40))  # too old
    add_platform(session, team.admin, "app", [True, True, True, True])
    add_platform(session, team.admin, "api", [True, False, True, False])
    session.commit()
    cards = cards_of(_briefing(client, team))
    agents = cards["agents"][1]
    assert ">2<" in agents
    assert "sur 11" in agents
    assert "CTO" in agents
    assert "CFO" in agents
    assert "CMO" not in agents
    uptime = cards["uptime"][1]
    assert f"75,00{NBSP}%" in uptime  # (100 % + 50 %) / 2
    assert "Moyenne" in uptime
    assert "Moyenne des disponibilités" in uptime
    last = cards["last_run"][1]
    assert "Rapport financier" in last
    assert "Terminé" in last
    assert "il y a 3 h" in last


def test_the_latest_daily_brief_is_rendered(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    older = add_run(session, team, runtime.registry, "DAILY_EXECUTIVE_BRIEF", ago=timedelta(days=1))
    session.commit()
    run = run_daily_brief(runtime, session, team)
    assert run.output is not None
    html = _briefing(client, team)
    brief = cards_of(html)["brief"][1]
    assert f"/runs/{run.id}" in brief
    assert f"/runs/{older.id}" not in brief
    assert "Rapport hors ligne" in brief  # offline provider, said plainly
    for section in run.output["sections"]:
        assert f"<summary>{escape(section['title'])}</summary>" in brief
    assert "Recommandations" in brief
    summary = run.output["executive_summary"].split(":")[0]
    assert summary.replace("'", "&#39;") in brief
    client.cookies.set("runhq_lang", "en")
    assert "Offline report" in cards_of(client.get("/").text)["brief"][1]


def test_mrr_from_stripe(
    make_client: Callable[..., TestClient], team: Team, stripe: FakeStripe
) -> None:
    stripe.subscriptions = [
        make_subscription("sub_1", "cus_1", [price_item(2900, "eur")]),
        make_subscription("sub_2", "cus_2", [price_item(120000, "eur", interval="year")]),
    ]
    client = make_client(**_stripe_settings(stripe))
    state, mrr = cards_of(_briefing(client, team))["mrr"]
    assert state == "ok"
    assert f"129,00{NBSP}€" in mrr  # 29 + 1200 / 12
    assert "2 abonnements actifs" in mrr
    client.cookies.set("runhq_lang", "en")
    assert "€129.00" in cards_of(client.get("/").text)["mrr"][1]


@pytest.mark.parametrize("role", [Role.owner, Role.viewer])
def test_failing_stripe_shows_a_dash_and_the_rest(
    make_client: Callable[..., TestClient],
    session: Session,
    runtime: Runtime,
    team: Team,
    stripe: FakeStripe,
    role: Role,
) -> None:
    stripe.fail(500)
    add_run(session, team, runtime.registry, "CODE_REVIEW")
    session.commit()
    client = make_client(**_stripe_settings(stripe))
    cards = cards_of(_briefing(client, team, role))
    state, mrr = cards["mrr"]
    assert state == "unavailable"
    assert "—" in mrr
    assert "Service indisponible" in mrr
    assert "0,00" not in mrr
    # The reason is for who can fix it.
    assert ("Stripe answered 500" in mrr) is (role == Role.owner)
    assert all(state != "failed" for state, _ in cards.values())
    assert cards["last_run"][0] == "ok"
    assert len(stripe.requests) == 1  # one attempt: the page does not wait on retries


def test_unreachable_stripe_is_unavailable_too(
    make_client: Callable[..., TestClient], team: Team
) -> None:
    client = make_client(stripe_api_key="sk_test_x", stripe_base_url="http://127.0.0.1:9")
    assert cards_of(_briefing(client, team))["mrr"][0] == "unavailable"


def test_the_mrr_is_kept_a_while(
    make_client: Callable[..., TestClient], team: Team, stripe: FakeStripe
) -> None:
    stripe.subscriptions = [make_subscription("sub_1", "cus_1", [price_item(1000, "eur")])]
    stripe.fail(503, times=1)
    client = make_client(**_stripe_settings(stripe), dashboard_kpi_cache_seconds=300)
    with FrozenClock(clock.now()) as frozen:
        assert cards_of(_briefing(client, team))["mrr"][0] == "unavailable"
        assert cards_of(client.get("/").text)["mrr"][0] == "unavailable"  # failure kept
        assert len(stripe.requests) == 1
        frozen.advance(timedelta(seconds=61))  # a failure is retried within a minute
        assert f"10,00{NBSP}€" in cards_of(client.get("/").text)["mrr"][1]
        frozen.advance(timedelta(seconds=200))
        client.get("/")
        asked = len(stripe.requests)
        frozen.advance(timedelta(seconds=101))  # success kept 300 s
        client.get("/")
        assert len(stripe.requests) > asked


@pytest.mark.parametrize("failing", list(briefing.CARDS))
def test_each_card_fails_alone(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    add_run(session, team, runtime.registry, "CODE_REVIEW")
    session.commit()

    def broken(_: briefing.CardInput) -> dict[str, Any]:
        raise RuntimeError("card exploded")

    spec = briefing.CARDS[failing]
    monkeypatch.setitem(briefing.CARDS, failing, replace(spec, load=broken))
    cards = cards_of(_briefing(client, team))
    assert list(cards) == list(briefing.CARDS)
    for key, (state, body) in cards.items():
        if key == failing:
            assert state == "failed"
            assert FAILED in body
        else:
            assert state != "failed", key
            assert FAILED not in body, key
    client.cookies.set("runhq_lang", "en")
    assert "Could not load this module" in cards_of(client.get("/").text)[failing][1]


def test_a_failed_query_does_not_sink_the_other_cards(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL a failed statement aborts the transaction: the savepoint contains it."""
    add_run(session, team, runtime.registry, "CODE_REVIEW")
    runs.create_run(session, team.operator, runtime.registry, run_type="RELEASE_GATE_CHECK")
    session.commit()

    def bad_sql(inp: briefing.CardInput) -> dict[str, Any]:
        inp.session.execute(text("SELECT no_such_column FROM runs"))
        return {}

    monkeypatch.setitem(briefing.CARDS, "agents", replace(briefing.CARDS["agents"], load=bad_sql))
    html = _briefing(client, team)
    cards = cards_of(html)
    assert cards["agents"][0] == "failed"
    assert cards["uptime"][0] == "empty"
    assert cards["last_run"][0] == "ok"
    assert 'data-badge="pending_approvals"' in html  # read after the failure


def test_a_card_whose_template_fails_fails_alone(
    client: TestClient, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = briefing.CARDS["uptime"]
    monkeypatch.setitem(
        briefing.CARDS, "uptime", replace(spec, load=lambda _: {"ratio": "not a number"})
    )
    cards = cards_of(_briefing(client, team))
    assert cards["uptime"][0] == "failed"
    assert cards["agents"][0] == "ok"


def test_sidebar_badges(client: TestClient, session: Session, runtime: Runtime, team: Team) -> None:
    add_run(session, team, runtime.registry, "CODE_REVIEW", status=RunStatus.failed)
    add_run(
        session,
        team,
        runtime.registry,
        "SEO_AUDIT",
        status=RunStatus.failed,
        ago=timedelta(hours=2),
    )
    add_run(
        session, team, runtime.registry, "SEO_AUDIT", status=RunStatus.failed, ago=timedelta(days=2)
    )
    runs.create_run(session, team.operator, runtime.registry, run_type="RELEASE_GATE_CHECK")
    session.commit()
    html = _briefing(client, team, Role.viewer)
    assert 'data-badge="failures_24h" aria-hidden="true">2<' in html
    assert "(2 échecs ces dernières 24 h)" in html
    assert 'data-badge="pending_approvals" aria-hidden="true">1<' in html
    assert "(1 run en attente d&#39;approbation)" in html
    assert 'href="/" aria-current="page"' in html


def test_a_bounded_number_of_queries(
    client: TestClient, session: Session, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    """Not N+1: the page asks the same whether there is 1 run and platform or 20."""
    log_in(client, team.emails[Role.owner])
    run_daily_brief(runtime, session, team)

    def grow(n: int) -> None:
        for i in range(n):
            run_type = ("CODE_REVIEW", "SEO_AUDIT", "FINANCIAL_REPORT")[i % 3]
            add_run(session, team, runtime.registry, run_type, ago=timedelta(minutes=5 + i))
            add_run(session, team, runtime.registry, run_type, status=RunStatus.failed)
            add_platform(session, team.admin, f"p-{uuid.uuid4().hex[:8]}", [True, i % 2 == 0])
        session.commit()

    def count() -> list[str]:
        with counted_statements(db_engine) as statements:
            assert client.get("/").status_code == 200
        return statements

    grow(1)
    few = count()
    grow(19)
    many = count()
    assert len(few) == len(many), "\n".join(many)
    queries = [s for s in many if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(queries) <= 12, "\n".join(queries)
