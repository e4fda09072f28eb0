"""PRICING_CHANGE end to end against a fake that follows Stripe's documented responses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, make_runtime, make_settings
from tests.fakes.stripe_prices_server import FakeStripePrices


@pytest.fixture
def stripe() -> Iterator[FakeStripePrices]:
    with FakeStripePrices() as fake:
        fake.add_product("prod_pro", "Pro plan", price_amount=2900)
        yield fake


@pytest.fixture
def billing(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    db_engine: Engine,
    stripe: FakeStripePrices,
) -> Runtime:
    settings = make_settings(
        tmp_path, database_url, stripe_api_key=stripe.api_key, stripe_base_url=stripe.base_url
    )
    return make_runtime(settings, sessions, db_engine)


def _approved(rt: Runtime, session: Session, team: Team) -> Run:
    run, _ = runs.create_run(
        session,
        team.operator,
        rt.registry,
        run_type="PRICING_CHANGE",
        params={"product": "prod_pro", "new_amount_cents": 3900, "currency": "eur"},
    )
    session.commit()
    assert rt.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    assert run.plan is not None
    assert run.plan["parameters"]["new_amount_cents"] == 3900
    runs.approve_run(session, team.owner, run.id, reason="new pricing")
    session.commit()
    return run


def test_pricing_change_creates_one_price_and_switches_the_default(
    billing: Runtime, session: Session, team: Team, stripe: FakeStripePrices
) -> None:
    run = _approved(billing, session, team)
    assert billing.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    prices = stripe.prices_of("prod_pro")
    assert len(prices) == 2
    new = next(p for p in prices if p["unit_amount"] == 3900)
    assert stripe.products["prod_pro"]["default_price"] == new["id"]
    result = run.action_result
    assert result is not None
    assert result["new_price"] == new["id"]
    assert result["old_price"] != new["id"]
    assert billing.settings.stripe_api_key is not None
    assert billing.settings.stripe_api_key.get_secret_value() not in str(result)


def test_unknown_product_fails_with_stripes_message(
    billing: Runtime, session: Session, team: Team, stripe: FakeStripePrices
) -> None:
    run, _ = runs.create_run(
        session,
        team.operator,
        billing.registry,
        run_type="PRICING_CHANGE",
        params={"product": "prod_nope", "new_amount_cents": 100, "currency": "eur"},
    )
    session.commit()
    billing.engine.execute(run.id)
    session.refresh(run)
    runs.approve_run(session, team.owner, run.id, reason="x")
    session.commit()
    assert billing.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "No such product" in (run.error or "")
    assert stripe.prices_of("prod_pro")[0]["unit_amount"] == 2900
