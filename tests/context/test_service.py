"""gather_context: one broken provider becomes an 'unavailable' fact and the others still
answer, whether the facts are read through a reader (each statement alone, as the engine
does) or inside a transaction (a savepoint per provider)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.context import service as context
from runhq.context.schemas import ContextRequest, Fact
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_reader_factory, make_session_factory
from tests.conftest import make_settings, make_team


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
        req = ContextRequest(
            session=session,
            settings=settings,
            workspace_id=team.workspace_id,
            run_id=uuid.uuid4(),
            run_type="DAILY_EXECUTIVE_BRIEF",
            platform_key=None,
            params={},
            topic="brief",
            now=clock.now(),
        )
        gathered = context.gather_context(req, ["broken", "recent_runs", "costs"])
    facts = gathered["facts"]
    assert facts["broken"]["status"] == "unavailable"
    assert "internal error" in facts["broken"]["summary"] + str(facts["broken"])
    assert facts["recent_runs"]["status"] == "ok"
    assert facts["costs"]["status"] == "ok"


def test_network_providers_report_unavailable_when_not_configured(
    tmp_path: Path, fresh_database_url: str, factories: dict[str, sessionmaker[Session]]
) -> None:
    settings = make_settings(tmp_path, fresh_database_url)
    make: Callable[[], Session] = factories["reader"]
    with make() as session:
        req = ContextRequest(
            session=session,
            settings=settings,
            workspace_id=uuid.uuid4(),
            run_id=uuid.uuid4(),
            run_type="MARKET_WATCH",
            platform_key=None,
            params={},
            topic="x",
            now=clock.now(),
        )
        facts = context.gather_context(req, ["stripe", "github", "web_search"])["facts"]
    for name, setting in (
        ("stripe", "RUNHQ_STRIPE_API_KEY"),
        ("github", "RUNHQ_GITHUB_REPOSITORY"),
        ("web_search", "RUNHQ_WEB_SEARCH_API_KEY"),
    ):
        assert facts[name]["status"] == "unavailable"
        assert setting in str(facts[name])
