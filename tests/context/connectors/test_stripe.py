"""Stripe connector against a local fake of Stripe's REST API."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runhq.context.connectors.base import Backoff, ConnectorUnavailable
from runhq.context.connectors.stripe import (
    fetch_stripe_facts,
    minor_to_major,
    monthly_amount_minor,
)
from tests.fakes.stripe_server import FakeStripe, error_body, make_subscription, price_item

FAST = Backoff(base=0.001, maximum=0.005, retry_after_cap=0.01)
MONTHS_PER_MONTH = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


def facts(client: httpx.Client, fake: FakeStripe, *, attempts: int = 3) -> dict[str, Any]:
    return fetch_stripe_facts(
        client, api_key=fake.api_key, base_url=fake.base_url, backoff=FAST, attempts=attempts
    )


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- MRR arithmetic ---------------------------------------------------------------------------


def test_mrr_across_intervals_quantities_and_currencies(
    client: httpx.Client, fake: FakeStripe
) -> None:
    fake.subscriptions = [
        # 2 seats × 10.00 €/month = 20.00 €
        make_subscription("sub_monthly", "cus_a", [price_item(1000, "eur", quantity=2)]),
        # 120.00 €/year = 10.00 €/month; 30.00 € every 3 months = 10.00 €/month
        make_subscription(
            "sub_mixed",
            "cus_a",
            [
                price_item(12000, "eur", interval="year"),
                price_item(3000, "eur", interval="month", interval_count=3),
                # metered: no fixed monthly amount, excluded rather than guessed
                price_item(5, "eur", usage_type="metered", quantity=None),
                # tiered: no unit_amount either
                price_item(None, "eur", billing_scheme="tiered"),
            ],
        ),
        # 3 × 1.00 $/week = 3 × 52 / 12 = 13.00 $/month ; 0.10 $/day = 365 / 12 × 0.10 = 3.0416…
        make_subscription(
            "sub_usd",
            "cus_b",
            [
                price_item(100, "usd", interval="week", quantity=3),
                price_item(10, "USD", interval="day"),
            ],
        ),
        # zero-decimal currency: 5000 = ¥5000
        make_subscription("sub_jpy", "cus_c", [price_item(5000, "jpy")]),
        make_subscription("sub_trial", "cus_d", [price_item(9900, "eur")], status="trialing"),
        make_subscription("sub_gone", "cus_e", [price_item(9900, "eur")], status="canceled"),
    ]

    result = facts(client, fake)

    assert result["mrr"] == {"eur": 40.0, "jpy": 5000.0, "usd": 16.04}
    assert result["active_subscriptions"] == 4
    assert result["trialing_subscriptions"] == 1
    assert result["customers"] == 3
    assert result["items_excluded"] == 2
    assert "no FX conversion" in str(result["currency_note"])

    listed = fake.requests_to("/v1/subscriptions")
    assert [r.param("status") for r in listed] == ["active", "trialing"]
    assert all(r.param("limit") == "100" for r in listed)
    assert all(r.headers["authorization"] == f"Bearer {fake.api_key}" for r in listed)


def test_no_active_subscription_is_an_empty_mrr_not_zero(
    client: httpx.Client, fake: FakeStripe
) -> None:
    result = facts(client, fake)
    assert result["mrr"] == {}
    assert result["active_subscriptions"] == 0


def test_pagination_over_more_than_100_subscriptions(
    client: httpx.Client, fake: FakeStripe
) -> None:
    fake.subscriptions = [
        make_subscription(f"sub_{i:03d}", f"cus_{i % 200:03d}", [price_item(500, "eur")])
        for i in range(250)
    ]

    result = facts(client, fake)

    assert result["active_subscriptions"] == 250
    assert result["customers"] == 200
    assert result["mrr"] == {"eur": 1250.0}
    active_pages = [
        r for r in fake.requests_to("/v1/subscriptions") if r.param("status") == "active"
    ]
    assert len(active_pages) == 3
    # newest first: page 1 ends with sub_150, page 2 with sub_050
    assert [r.param("starting_after") for r in active_pages] == [None, "sub_150", "sub_050"]


def test_partial_embedded_items_are_fetched_in_full(client: httpx.Client, fake: FakeStripe) -> None:
    items = [price_item(100, "eur", item_id=f"si_{i}") for i in range(15)]
    fake.subscriptions = [make_subscription("sub_big", "cus_1", items)]
    fake.embedded_items_limit = 10

    result = facts(client, fake)

    assert result["mrr"] == {"eur": 15.0}
    (items_request,) = fake.requests_to("/v1/subscription_items")
    assert items_request.param("subscription") == "sub_big"


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=10**9),
    interval=st.sampled_from(["day", "week", "month", "year"]),
    count=st.integers(min_value=1, max_value=36),
    quantity=st.integers(min_value=0, max_value=10_000),
)
def test_monthly_normalisation_property(
    amount: int, interval: str, count: int, quantity: int
) -> None:
    monthly = monthly_amount_minor(
        amount, interval=interval, interval_count=count, quantity=quantity
    )
    expected = Fraction(amount * quantity) * MONTHS_PER_MONTH[interval] / count
    assert abs(Fraction(monthly) - expected) <= Fraction(1, 10**12) * max(Fraction(1), expected)


@settings(max_examples=100, deadline=None)
@given(amount=st.integers(min_value=0, max_value=10**9), quantity=st.integers(0, 1000))
def test_yearly_price_is_a_twelfth_per_month(amount: int, quantity: int) -> None:
    yearly = monthly_amount_minor(amount, interval="year", quantity=quantity)
    monthly = monthly_amount_minor(amount, interval="month", quantity=quantity)
    assert abs(yearly * 12 - monthly) < Decimal("1e-12") * max(Decimal(1), monthly)
    assert minor_to_major(yearly, "eur") == pytest.approx(amount * quantity / 1200, abs=0.0051)


def test_mrr_property_end_to_end(client: httpx.Client) -> None:
    with FakeStripe() as fake:

        @settings(max_examples=25, deadline=None)
        @given(
            amount=st.integers(min_value=1, max_value=10**7),
            interval=st.sampled_from(["day", "week", "month", "year"]),
            count=st.integers(min_value=1, max_value=12),
            quantity=st.integers(min_value=1, max_value=50),
        )
        def check(amount: int, interval: str, count: int, quantity: int) -> None:
            item = price_item(
                amount, "eur", interval=interval, interval_count=count, quantity=quantity
            )
            fake.subscriptions = [make_subscription("sub_1", "cus_1", [item])]
            result = facts(client, fake)
            expected = Fraction(amount * quantity) * MONTHS_PER_MONTH[interval] / count / 100
            assert result["mrr"] == {"eur": pytest.approx(float(expected), abs=0.0051)}

        check()


# -- failures ---------------------------------------------------------------------------------


def test_invalid_key_is_unavailable_with_stripes_message_and_no_key(
    client: httpx.Client, fake: FakeStripe
) -> None:
    wrong_key = "sk_test_wrongWrongWrong0000111122223333"
    with pytest.raises(ConnectorUnavailable) as caught:
        fetch_stripe_facts(client, api_key=wrong_key, base_url=fake.base_url, backoff=FAST)

    reason = caught.value.reason
    assert reason.startswith("Stripe answered 401: Invalid API Key provided")
    assert wrong_key not in reason
    assert caught.value.status_code == 401
    assert len(fake.requests) == 1  # 401 is not retried


def test_a_secret_echoed_by_the_platform_is_redacted(
    client: httpx.Client, fake: FakeStripe
) -> None:
    fake.fail(400, error_body(f"Key {fake.api_key} cannot list subscriptions"))
    with pytest.raises(ConnectorUnavailable) as caught:
        facts(client, fake)
    assert fake.api_key not in caught.value.reason
    assert "[redacted]" in caught.value.reason


def test_missing_key_is_unavailable_without_any_request(
    client: httpx.Client, fake: FakeStripe
) -> None:
    with pytest.raises(ConnectorUnavailable, match="not configured"):
        fetch_stripe_facts(client, api_key="  ", base_url=fake.base_url, backoff=FAST)
    assert fake.requests == []


def test_503_then_success_is_retried(client: httpx.Client, fake: FakeStripe) -> None:
    fake.subscriptions = [make_subscription("sub_1", "cus_1", [price_item(2500, "eur")])]
    fake.fail(503, times=1)

    result = facts(client, fake)

    assert result["mrr"] == {"eur": 25.0}
    assert [r.param("status") for r in fake.requests] == ["active", "active", "trialing"]


def test_persistent_500_is_unavailable_after_all_attempts(
    client: httpx.Client, fake: FakeStripe
) -> None:
    fake.fail(500)
    with pytest.raises(ConnectorUnavailable) as caught:
        facts(client, fake)
    assert caught.value.reason == (
        "Stripe answered 500: An unknown error occurred (after 3 attempts)"
    )
    assert len(fake.requests) == 3


def test_html_error_page_is_described_by_status(client: httpx.Client, fake: FakeStripe) -> None:
    fake.fail(502, b"<html><body>Bad gateway</body></html>")
    with pytest.raises(ConnectorUnavailable) as caught:
        facts(client, fake, attempts=2)
    assert caught.value.reason == "Stripe answered 502 Bad Gateway (after 2 attempts)"


def test_retry_after_is_honoured_but_capped(client: httpx.Client, fake: FakeStripe) -> None:
    fake.fail(429, times=1, headers={"Retry-After": "120"})
    capped = Backoff(base=0.001, maximum=0.005, retry_after_cap=0.15)

    started = time.monotonic()
    fetch_stripe_facts(client, api_key=fake.api_key, base_url=fake.base_url, backoff=capped)
    elapsed = time.monotonic() - started

    assert 0.15 <= elapsed < 1.0


def test_connection_refused_is_unavailable(client: httpx.Client) -> None:
    with pytest.raises(ConnectorUnavailable) as caught:
        fetch_stripe_facts(
            client, api_key="sk_test_x1234567", base_url=closed_port_url(), backoff=FAST
        )
    assert caught.value.reason.startswith("could not reach Stripe")
    assert "sk_test_x1234567" not in caught.value.reason
    assert caught.value.status_code is None


def test_timeout_is_unavailable(fake: FakeStripe) -> None:
    # A server that accepts but never answers: a bound, listening socket nobody reads from.
    with socket.socket() as silent, httpx.Client(timeout=0.05) as slow_client:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host, port = silent.getsockname()
        with pytest.raises(ConnectorUnavailable) as caught:
            fetch_stripe_facts(
                slow_client, api_key=fake.api_key, base_url=f"http://{host}:{port}", backoff=FAST
            )
    assert caught.value.reason == "Stripe did not answer in time (after 3 attempts)"
