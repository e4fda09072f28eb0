"""Stripe connector: monthly recurring revenue from the account's subscriptions.

Reads ``GET /v1/subscriptions`` (status ``active``, then ``trialing`` for a count), following
Stripe's cursor pagination (``has_more`` + ``starting_after``). Each subscription embeds its
items and their ``price`` by default; a price's ``unit_amount`` (smallest currency unit) ×
item ``quantity`` is normalised to one month from ``recurring.interval`` and
``recurring.interval_count``: year ÷ 12, week × 52 ÷ 12, day × 365 ÷ 12.

MRR is reported per currency in major units (no FX conversion), from list prices — before
discounts, credits and taxes. Metered and tiered prices have no fixed monthly amount: they are
left out and counted in ``items_excluded`` rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from runhq.context.connectors.base import (
    DEFAULT_BACKOFF,
    Backoff,
    ConnectorUnavailable,
    get_json,
)

__all__ = [
    "CURRENCY_NOTE",
    "fetch_stripe_facts",
    "minor_to_major",
    "monthly_amount_minor",
]

PLATFORM = "Stripe"
PAGE_LIMIT = 100
#: Safety stop: 500 pages of 100 = 50,000 subscriptions.
MAX_PAGES = 500

CURRENCY_NOTE = (
    "MRR per currency in major units, no FX conversion; list prices × quantity normalised to "
    "a month (year/12, week×52/12, day×365/12), before discounts and taxes; metered and "
    "tiered prices excluded (see items_excluded)."
)

# Stripe's documented zero-decimal and three-decimal currencies (amounts are in the smallest
# unit; for these the smallest unit is not a hundredth).
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
_THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

_PER_MONTH_FACTOR: dict[str, Decimal] = {
    "month": Decimal(1),
    "year": Decimal(1) / Decimal(12),
    "week": Decimal(52) / Decimal(12),
    "day": Decimal(365) / Decimal(12),
}


def monthly_amount_minor(
    unit_amount: Decimal | int, *, interval: str, interval_count: int = 1, quantity: int = 1
) -> Decimal:
    """Monthly amount, in the currency's smallest unit, of ``quantity`` × a recurring price.

    A price billed every ``interval_count`` ``interval`` s is spread over a month:
    yearly ÷ 12, weekly × 52 ÷ 12, daily × 365 ÷ 12.
    """
    if interval not in _PER_MONTH_FACTOR:
        raise ValueError(f"unknown recurring interval {interval!r}")
    if interval_count < 1:
        raise ValueError("interval_count must be at least 1")
    factor = _PER_MONTH_FACTOR[interval]
    return Decimal(unit_amount) * Decimal(quantity) * factor / Decimal(interval_count)


def minor_to_major(amount_minor: Decimal, currency: str) -> float:
    """Convert an amount in the smallest unit to major units, rounded to the currency's unit."""
    exponent = _currency_exponent(currency)
    major = amount_minor / (Decimal(10) ** exponent)
    return float(major.quantize(Decimal(1).scaleb(-exponent)))


def fetch_stripe_facts(
    client: httpx.Client,
    *,
    api_key: str,
    base_url: str = "https://api.stripe.com",
    attempts: int = 3,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> dict[str, Any]:
    """MRR per currency and subscription counts, read live from Stripe.

    Returns ``{"mrr": {"eur": 1234.5}, "active_subscriptions": 12, "trialing_subscriptions": 1,
    "customers": 11, "items_excluded": 0, "currency_note": ...}``.
    Raises :class:`ConnectorUnavailable` when Stripe is unconfigured, unreachable or refuses.
    """
    if not api_key.strip():
        raise ConnectorUnavailable("Stripe is not configured (no API key)")
    lister = _Lister(client, base_url.rstrip("/"), api_key.strip(), attempts, backoff)

    active = lister.list_all("/v1/subscriptions", {"status": "active"})
    trialing = lister.list_all("/v1/subscriptions", {"status": "trialing"})

    mrr_minor: dict[str, Decimal] = {}
    customers: set[str] = set()
    excluded = 0
    for subscription in active:
        customer = _customer_id(subscription.get("customer"))
        if customer is not None:
            customers.add(customer)
        for item in lister.items_of(subscription):
            contribution = _item_monthly_minor(item)
            if contribution is None:
                excluded += 1
                continue
            currency, amount = contribution
            mrr_minor[currency] = mrr_minor.get(currency, Decimal(0)) + amount

    return {
        "mrr": {cur: minor_to_major(amount, cur) for cur, amount in sorted(mrr_minor.items())},
        "active_subscriptions": len(active),
        "trialing_subscriptions": len(trialing),
        "customers": len(customers),
        "items_excluded": excluded,
        "currency_note": CURRENCY_NOTE,
    }


class _Lister:
    """Walks Stripe list endpoints page by page."""

    def __init__(
        self, client: httpx.Client, base_url: str, api_key: str, attempts: int, backoff: Backoff
    ) -> None:
        self._client = client
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._attempts = attempts
        self._backoff = backoff

    def list_all(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, str | int] = {**params, "limit": PAGE_LIMIT}
            if cursor is not None:
                query["starting_after"] = cursor
            page = get_json(
                self._client,
                f"{self._base_url}{path}",
                headers=self._headers,
                params=query,
                attempts=self._attempts,
                backoff=self._backoff,
                platform=PLATFORM,
            )
            data, has_more = _list_page(page, path)
            objects.extend(data)
            if not has_more or not data:
                return objects
            last_id = data[-1].get("id")
            if not isinstance(last_id, str) or not last_id:
                raise ConnectorUnavailable(f"Stripe listed {path} objects without ids")
            cursor = last_id
        raise ConnectorUnavailable(
            f"Stripe pagination of {path} did not end after {MAX_PAGES} pages"
        )

    def items_of(self, subscription: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The subscription's items; fetched separately only if the embedded list is partial."""
        items = subscription.get("items")
        if not isinstance(items, Mapping):
            return []
        data, has_more = _list_page(items, "subscription items")
        if not has_more:
            return data
        subscription_id = subscription.get("id")
        if not isinstance(subscription_id, str):
            raise ConnectorUnavailable("Stripe listed a subscription without an id")
        return self.list_all("/v1/subscription_items", {"subscription": subscription_id})


def _list_page(page: object, what: str) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
        raise ConnectorUnavailable(f"Stripe returned an unexpected shape for {what}")
    data = [obj for obj in page["data"] if isinstance(obj, dict)]
    return data, page.get("has_more") is True


def _customer_id(customer: object) -> str | None:
    if isinstance(customer, str):
        return customer
    if isinstance(customer, Mapping) and isinstance(customer.get("id"), str):
        return str(customer["id"])
    return None


def _item_monthly_minor(item: Mapping[str, Any]) -> tuple[str, Decimal] | None:
    """(currency, monthly amount in minor units) of one item, or None if not a fixed price."""
    price = item.get("price")
    if isinstance(price, Mapping):
        recurring = price.get("recurring")
        amount = _decimal(price.get("unit_amount_decimal"), price.get("unit_amount"))
    else:  # Legacy: items created from Plans carry only ``plan``.
        price = item.get("plan")
        if not isinstance(price, Mapping):
            return None
        recurring = price
        amount = _decimal(price.get("amount_decimal"), price.get("amount"))
    if not isinstance(recurring, Mapping) or amount is None:
        return None  # one-off, tiered or custom pricing: no fixed unit amount
    if recurring.get("usage_type") == "metered":
        return None  # billed on usage: its monthly amount is unknown in advance
    interval = recurring.get("interval")
    interval_count = recurring.get("interval_count", 1)
    currency = price.get("currency")
    if (
        not isinstance(interval, str)
        or interval not in _PER_MONTH_FACTOR
        or not isinstance(interval_count, int)
        or interval_count < 1
        or not isinstance(currency, str)
    ):
        return None
    quantity = item.get("quantity", 1)
    if quantity is None:
        quantity = 1
    if not isinstance(quantity, int) or quantity < 0:
        return None
    monthly = monthly_amount_minor(
        amount, interval=interval, interval_count=interval_count, quantity=quantity
    )
    return currency.lower(), monthly


def _decimal(*candidates: object) -> Decimal | None:
    for value in candidates:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | str):
            try:
                number = Decimal(value)
            except InvalidOperation:
                continue
            if number.is_finite():
                return number
    return None


def _currency_exponent(currency: str) -> int:
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2
