"""Stripe price change against a local fake of the Products/Prices API and its idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runhq.actions.connectors.base import ActionFailed, ActionResult
from runhq.actions.connectors.stripe import change_price
from tests.fakes.stripe_prices_server import FakeStripePrices

PRODUCT = "prod_basic"


@pytest.fixture
def stripe() -> Iterator[FakeStripePrices]:
    with FakeStripePrices() as fake:
        fake.add_product(PRODUCT, "Basic plan", price_amount=1900, currency="eur")
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


def change(client: httpx.Client, stripe: FakeStripePrices, **overrides: Any) -> ActionResult:
    arguments: dict[str, Any] = {
        "api_key": stripe.api_key,
        "base_url": stripe.base_url,
        "product": PRODUCT,
        "new_amount_cents": 2400,
        "currency": "EUR",
        "idempotency_key": "run_7:price-change",
    }
    arguments.update(overrides)
    return change_price(client, **arguments)


def test_change_price_creates_a_price_and_makes_it_the_default(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    old_price = stripe.products[PRODUCT]["default_price"]

    result = change(client, stripe)

    assert result.ok
    new_price = result.details["new_price"]
    assert result.details == {
        "product": PRODUCT,
        "old_price": old_price,
        "new_price": new_price,
        "amount": 2400,
        "currency": "eur",
        "interval": "month",
        "replayed": False,
    }
    assert stripe.products[PRODUCT]["default_price"] == new_price
    price = stripe.prices[new_price]
    assert (price["unit_amount"], price["currency"]) == (2400, "eur")
    assert price["recurring"]["interval"] == "month"
    assert "24.00 EUR/month" in result.summary
    assert old_price in result.summary

    get, create, update = stripe.requests
    assert (get.method, get.path) == ("GET", f"/v1/products/{PRODUCT}")
    assert "idempotency-key" not in get.headers
    assert (create.method, create.path) == ("POST", "/v1/prices")
    assert create.headers["content-type"] == "application/x-www-form-urlencoded"
    assert create.form == {
        "product": [PRODUCT],
        "unit_amount": ["2400"],
        "currency": ["eur"],
        "recurring[interval]": ["month"],
    }
    assert create.headers["idempotency-key"] == "run_7:price-change:price"
    assert (update.method, update.path) == ("POST", f"/v1/products/{PRODUCT}")
    assert update.form == {"default_price": [new_price]}
    assert update.headers["idempotency-key"] == "run_7:price-change:default"
    assert all(r.headers["authorization"] == f"Bearer {stripe.api_key}" for r in stripe.requests)


def test_the_same_key_twice_creates_one_price(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    first = change(client, stripe)
    second = change(client, stripe)

    assert len(stripe.prices_of(PRODUCT)) == 2  # the original and ONE new price
    assert second.details["new_price"] == first.details["new_price"]
    assert second.details["replayed"] is True
    assert second.details["old_price"] is None  # the first result recorded it
    assert "already applied" in second.summary


def test_a_lost_answer_is_retryable_and_the_retry_completes_with_one_price(
    stripe: FakeStripePrices,
) -> None:
    old_price = stripe.products[PRODUCT]["default_price"]
    stripe.hang(1.0, path="/v1/prices")  # the price is created, the answer comes too late
    with httpx.Client(timeout=0.2) as impatient, pytest.raises(ActionFailed) as caught:
        change(impatient, stripe)
    assert caught.value.retryable is True
    assert "same idempotency key is safe" in caught.value.reason
    assert len(stripe.prices_of(PRODUCT)) == 2
    assert stripe.products[PRODUCT]["default_price"] == old_price

    with httpx.Client(timeout=2.0) as client:
        result = change(client, stripe)
    assert len(stripe.prices_of(PRODUCT)) == 2
    assert result.details["old_price"] == old_price
    assert result.details["replayed"] is True
    assert stripe.products[PRODUCT]["default_price"] == result.details["new_price"]


def test_the_same_key_with_other_parameters_is_an_idempotency_error(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    change(client, stripe)
    with pytest.raises(ActionFailed) as caught:
        change(client, stripe, new_amount_cents=2900)
    assert caught.value.retryable is False
    assert caught.value.status_code == 400
    assert "idempotency_error" in caught.value.reason
    assert "same parameters" in caught.value.reason
    assert len(stripe.prices_of(PRODUCT)) == 2


def test_a_failure_after_the_price_was_created_names_it(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    stripe.fail(502, method="POST", path=f"/v1/products/{PRODUCT}")
    with pytest.raises(ActionFailed) as caught:
        change(client, stripe)
    assert caught.value.retryable is True
    assert "the price was created" in caught.value.reason
    assert len(stripe.prices_of(PRODUCT)) == 2

    result = change(client, stripe)
    assert result.ok
    assert len(stripe.prices_of(PRODUCT)) == 2  # the retry reused the created price


def test_an_unknown_product_is_not_retryable(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    with pytest.raises(ActionFailed) as caught:
        change(client, stripe, product="prod_missing")
    assert caught.value.retryable is False
    assert caught.value.status_code == 404
    assert "No such product: 'prod_missing'" in caught.value.reason


def test_a_wrong_key_is_refused_and_never_appears_in_the_reason(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    wrong = "sk_test_wrongKeyWrongKeyWrongKey9876"
    with pytest.raises(ActionFailed) as caught:
        change(client, stripe, api_key=wrong)
    assert caught.value.retryable is False
    assert caught.value.status_code == 401
    assert "Invalid API Key" in caught.value.reason
    assert wrong not in caught.value.reason
    assert stripe.api_key not in caught.value.reason


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limits_and_server_errors_are_retryable(
    stripe: FakeStripePrices, client: httpx.Client, status: int
) -> None:
    stripe.fail(status, times=1)
    with pytest.raises(ActionFailed) as caught:
        change(client, stripe)
    assert caught.value.retryable is True
    assert caught.value.status_code == status
    assert len(stripe.requests) == 1  # not retried here


@pytest.mark.parametrize(
    ("status", "header", "retryable"), [(500, "false", False), (400, "true", True)]
)
def test_stripe_should_retry_overrides_the_guess(
    stripe: FakeStripePrices, client: httpx.Client, status: int, header: str, retryable: bool
) -> None:
    stripe.fail(status, headers={"Stripe-Should-Retry": header})
    with pytest.raises(ActionFailed) as caught:
        change(client, stripe)
    assert caught.value.retryable is retryable


def test_arguments_are_checked_before_any_request(
    stripe: FakeStripePrices, client: httpx.Client
) -> None:
    with pytest.raises(ValueError, match="currency"):
        change(client, stripe, currency="euro")
    with pytest.raises(ValueError, match="interval"):
        change(client, stripe, interval="fortnight")
    with pytest.raises(ValueError, match="zero or more"):
        change(client, stripe, new_amount_cents=-1)
    with pytest.raises(ValueError, match="integer"):
        change(client, stripe, new_amount_cents=19.99)
    with pytest.raises(ValueError, match="idempotency_key"):
        change(client, stripe, idempotency_key="")
    assert stripe.requests == []
