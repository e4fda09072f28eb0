"""gather_context: one broken provider becomes an 'unavailable' fact and the others still
answer, whether the facts are read through a reader (each statement alone, as the engine
does) or inside a transaction (a savepoint per provider)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.config import Settings
from runhq.context import service as context
from runhq.context.schemas import ContextRequest, Fact
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_reader_factory, make_session_factory
from runhq.platforms import service as platforms
from runhq.platforms.models import Incident
from tests.conftest import counted_statements, make_settings, make_team


def _request(
    session: Session, settings: Settings, workspace_id: uuid.UUID, run_type: str, topic: str
) -> ContextRequest:
    """What a run of ``run_type`` asks the providers, now, with no platform or parameters."""
    return ContextRequest(
        session=session,
        settings=settings,
        workspace_id=workspace_id,
        run_id=uuid.uuid4(),
        run_type=run_type,
        platform_key=None,
        params={},
        topic=topic,
        now=clock.now(),
    )


def _broken(req: ContextRequest) -> Fact:
    req.session.execute(text("SELECT * FROM no_such_table"))  # PostgreSQL aborts here
    raise AssertionError("unreachable")


@pytest.fixture
def factories(fresh_database_url: str) -> Iterator[dict[str, sessionmaker[Session]]]:
    engine = build_engine(fresh_database_url)
    upgrade(engine)
    yield {"reader": make_reader_factory(engine), "transaction": make_session_factory(engine)}
    engine.dispose()


@pytest.mark.parametrize("kind", ["reader", "transaction"])
def test_a_broken_provider_does_not_sink_the_others(
    kind: str,
    factories: dict[str, sessionmaker[Session]],
    tmp_path: Path,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with factories["transaction"]() as setup:
        team = make_team(setup)
        setup.commit()
    monkeypatch.setitem(context.PROVIDERS, "broken", _broken)
    settings = make_settings(tmp_path, fresh_database_url)
    with factories[kind]() as session:
        req = _request(session, settings, team.workspace_id, "DAILY_EXECUTIVE_BRIEF", topic="brief")
        gathered = context.gather_context(req, ["broken", "recent_runs", "costs"])
    facts = gathered["facts"]
    assert facts["broken"]["status"] == "unavailable"
    assert facts["broken"]["reason"].startswith("erreur interne\u00a0: ")  # the error class
    assert facts["recent_runs"]["status"] == "ok"
    assert facts["costs"]["status"] == "ok"


def test_network_providers_report_unavailable_when_not_configured(
    tmp_path: Path, fresh_database_url: str, factories: dict[str, sessionmaker[Session]]
) -> None:
    settings = make_settings(tmp_path, fresh_database_url)
    make: Callable[[], Session] = factories["reader"]
    with make() as session:
        req = _request(session, settings, uuid.uuid4(), "MARKET_WATCH", topic="x")
        facts = context.gather_context(req, ["stripe", "github", "web_search"])["facts"]
    for name, setting in (
        ("stripe", "RUNHQ_STRIPE_API_KEY"),
        ("github", "RUNHQ_GITHUB_REPOSITORY"),
        ("web_search", "RUNHQ_WEB_SEARCH_API_KEY"),
    ):
        assert facts[name]["status"] == "unavailable"
        assert setting in str(facts[name])


def test_the_platforms_fact_costs_the_same_queries_for_one_or_many_platforms(
    tmp_path: Path, database_url: str, session: Session, db_engine: Engine
) -> None:
    team = make_team(session)
    settings = make_settings(tmp_path, database_url)

    def gather() -> tuple[dict[str, Any], list[str]]:
        req = _request(session, settings, team.workspace_id, "SECURITY_AUDIT", topic="x")
        with counted_statements(db_engine) as statements:
            fact = context.gather_context(req, ["platforms"])["facts"]["platforms"]
        return fact, statements

    def add(key: str) -> None:
        platform = platforms.create_platform(
            session, team.admin, key=key, name=key, health_urls=["http://127.0.0.1:9/"]
        )
        session.add(
            Incident(
                workspace_id=team.workspace_id,
                platform_id=platform.id,
                reason=f"{key} is down",
                failures=3,
                opened_at=clock.now() - timedelta(minutes=5),
            )
        )
        session.flush()

    add("p0")
    one, few = gather()
    for n in range(1, 5):
        add(f"p{n}")
    five, many = gather()
    assert len(many) == len(few)
    assert str(one).count("is down") >= 1
    assert all(f"p{n} is down" in str(five) for n in range(5))


@pytest.mark.parametrize(
    ("lang", "texts"),
    [
        (
            "fr",
            {
                "recent_runs": ("Runs récents (7 jours)", "0 run ces 7 derniers jours"),
                "failures": ("Échecs", "Aucun run en échec ces 7 derniers jours."),
                "pending_approvals": ("Approbations en attente", "Aucun run n'attend"),
                "agents": ("Activité des agents (30 jours)", "0 agent a travaillé"),
                "costs": ("Coûts IA du mois", "0,00\u00a0€ dépensés sur 0 runs"),
                "log_errors": ("Erreurs des logs (24 h)", "taux d'erreur\u00a0: 0,0\u00a0%"),
                "stripe": ("Chiffre d'affaires (Stripe)", "Stripe n'est pas configuré"),
            },
        ),
        (
            "en",
            {
                "recent_runs": ("Recent runs (7 days)", "0 runs in the last 7 days"),
                "failures": ("Failures", "No failed runs in the last 7 days."),
                "pending_approvals": ("Pending approvals", "No run is waiting for approval."),
                "agents": ("Agent activity (30 days)", "0 agents ran in the last 30 days."),
                "costs": ("AI costs this month", "€0.00 spent on 0 runs"),
                "log_errors": ("Log errors (24 h)", "(error rate 0.0%)"),
                "stripe": ("Revenue (Stripe)", "Stripe is not configured"),
            },
        ),
    ],
)
def test_facts_are_written_in_the_report_language(
    lang: str,
    texts: dict[str, tuple[str, str]],
    tmp_path: Path,
    fresh_database_url: str,
    factories: dict[str, sessionmaker[Session]],
) -> None:
    with factories["transaction"]() as setup:
        team = make_team(setup)
        setup.commit()
    settings = make_settings(tmp_path, fresh_database_url, report_language=lang)
    with factories["reader"]() as session:
        req = _request(session, settings, team.workspace_id, "DAILY_EXECUTIVE_BRIEF", topic="x")
        facts = context.gather_context(req, list(texts))["facts"]
    for name, (title, summary) in texts.items():
        assert facts[name]["title"] == title, name
        assert summary in facts[name]["summary"], (name, facts[name]["summary"])
    # The data stays language-free: the same keys and numbers in either language.
    assert facts["recent_runs"]["data"]["total"] == 0
