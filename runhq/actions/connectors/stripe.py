"""Stripe price change: create a new recurring Price and make it the Product's default.

Stripe prices are immutable in amount: "changing a price" means creating a new Price for the
product (``POST /v1/prices``) and pointing the product's ``default_price`` at it
(``POST /v1/products/{id}``). Existing subscriptions keep their price; only new checkouts use the
new default. The old price stays active (archiving it is a separate decision).

Idempotency (Stripe's documented semantics): a POST carrying an ``Idempotency-Key`` has its
first status and body saved once the endpoint starts executing; the same key with the same
parameters returns the saved answer (marked ``Idempotent-Replayed: true``) instead of acting
again, and the same key with *different* parameters is refused (400 ``idempotency_error``).
Keys live at least 24 hours. :func:`change_price` derives one key per step from the caller's
key (``<key>:price``, ``<key>:default``) and sends parameters that depend only on the caller's
inputs, so calling it twice with the same key creates one price. The recorded ``old_price`` is
the product's ``default_price`` read before the change; on a replay (the change already
happened) it is ``None`` — the first call's result holds it.

Each request is sent once; 429, 5xx, 409 (a concurrent request with the same key) and transport
errors raise a retryable :class:`ActionFailed` — retrying with the same idempotency key is safe.
Stripe's ``Stripe-Should-Retry`` header, when present, overrides that guess.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx

from runhq.actions.connectors.base import ActionFailed, ActionResult, clip, redact

__all__ = ["DEFAULT_BASE_URL", "STRIPE_VERSION", "change_price"]

DEFAULT_BASE_URL = "https://api.stripe.com"
#: Pinned API version: ``default_price`` exists since 2022-08-01; pinning keeps answers stable
#: whatever the account's default version is.
STRIPE_VERSION = "2024-06-20"
INTERVALS = frozenset({"day", "week", "month", "year"})
_CURRENCY = re.compile(r"[a-z]{3}")
_MAX_IDEMPOTENCY_KEY = 255 - len(":default")


def change_price(
    client: httpx.Client,
    *,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    product: str,
    new_amount_cents: int,
    currency: str,
    interval: str = "month",
    idempotency_key: str,
) -> ActionResult:
    """Create a ``new_amount_cents`` ``currency`` price billed every ``interval`` for
    ``product`` and make it the product's default price.

    Details: ``product``, ``old_price``, ``new_price``, ``amount``, ``currency``, ``interval``,
    ``replayed`` (true when Stripe answered from a previous call with the same key).
    """
    if not api_key:
        raise ValueError("a Stripe API key is required")
    if not product.strip():
        raise ValueError("product is required")
    if isinstance(new_amount_cents, bool) or not isinstance(new_amount_cents, int):
        raise ValueError("new_amount_cents must be an integer")
    if new_amount_cents < 0:
        raise ValueError("new_amount_cents must be zero or more")
    currency = currency.strip().lower()
    if not _CURRENCY.fullmatch(currency):
        raise ValueError("currency must be a three-letter ISO code")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(sorted(INTERVALS))}")
    if not idempotency_key.strip() or len(idempotency_key) > _MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency_key must be 1-{_MAX_IDEMPOTENCY_KEY} characters")

    stripe = _Stripe(client, base_url.rstrip("/"), api_key)
    product_path = f"/v1/products/{quote(product, safe='')}"

    current, _ = stripe.request("GET", product_path, what=f"reading product {product}")
    old_price = _price_id(current.get("default_price"))

    price, price_headers = stripe.request(
        "POST",
        "/v1/prices",
        what=f"creating the new price of {product}",
        data={
            "product": product,
            "unit_amount": str(new_amount_cents),
            "currency": currency,
            "recurring[interval]": interval,
        },
        idempotency_key=f"{idempotency_key}:price",
    )
    new_price = price.get("id")
    if not isinstance(new_price, str) or not new_price:
        raise ActionFailed("Stripe created a price but its answer has no id", retryable=False)
    replayed = price_headers.get("idempotent-replayed", "").lower() == "true"

    updated, update_headers = stripe.request(
        "POST",
        product_path,
        what=(
            f"making {new_price} the default price of {product} (the price was created; "
            f"retry with the same idempotency key to finish)"
        ),
        data={"default_price": new_price},
        idempotency_key=f"{idempotency_key}:default",
    )
    if _price_id(updated.get("default_price")) != new_price:
        raise ActionFailed(
            f"Stripe accepted the update of {product} but its default price is not {new_price}",
            retryable=False,
        )

    already_applied = old_price == new_price
    if already_applied:
        old_price = None  # a previous call with this key already switched it
    replayed = (
        replayed
        or already_applied
        or update_headers.get("idempotent-replayed", "").lower() == "true"
    )
    amount = _format_amount(new_amount_cents, currency)
    summary = f"{product}: default price is now {new_price} ({amount}/{interval})"
    summary += f", was {old_price}" if old_price else ""
    if already_applied:
        summary += " (already applied by a previous attempt with the same key)"
    elif replayed:
        summary += " (completing a previous attempt with the same key)"
    return ActionResult(
        ok=True,
        summary=summary,
        details={
            "product": product,
            "old_price": old_price,
            "new_price": new_price,
            "amount": new_amount_cents,
            "currency": currency,
            "interval": interval,
            "replayed": replayed,
        },
    )


class _Stripe:
    """One Stripe account's requests: auth headers, form bodies, error mapping."""

    def __init__(self, client: httpx.Client, base_url: str, api_key: str) -> None:
        self._client = client
        self._base_url = base_url
        self._api_key = api_key

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        data: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], httpx.Headers]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Stripe-Version": STRIPE_VERSION,
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        safe_retry = (
            " (retrying with the same idempotency key is safe)"
            if idempotency_key is not None
            else ""
        )
        try:
            response = self._client.request(
                method, self._base_url + path, data=data, headers=headers, follow_redirects=False
            )
        except httpx.ConnectError as exc:
            raise ActionFailed(
                f"could not connect to Stripe while {what}: {self._detail(exc)}", retryable=True
            ) from None
        except httpx.TimeoutException:
            raise ActionFailed(
                f"Stripe did not answer in time while {what}{safe_retry}", retryable=True
            ) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise ActionFailed(
                f"the connection to Stripe failed while {what}: {self._detail(exc)}{safe_retry}",
                retryable=True,
            ) from None
        except httpx.HTTPError as exc:
            raise ActionFailed(
                f"request to Stripe failed while {what}: {self._detail(exc)}", retryable=False
            ) from None

        body = _json_object(response)
        if response.is_success and body is not None:
            return body, response.headers
        status = response.status_code
        if response.is_success:
            raise ActionFailed(
                f"Stripe answered {status} with a body that is not a JSON object while {what}",
                retryable=False,
                status_code=status,
            )
        raise ActionFailed(
            self._describe(status, body, what),
            retryable=_retryable(response),
            status_code=status,
        )

    def _describe(self, status: int, body: dict[str, Any] | None, what: str) -> str:
        error = body.get("error") if body is not None else None
        if isinstance(error, dict):
            message = error.get("message")
            kind = error.get("code") or error.get("type")
            text = f"Stripe answered {status} while {what}"
            if isinstance(kind, str) and kind:
                text += f" [{kind}]"
            if isinstance(message, str) and message.strip():
                text += f": {clip(message)}"
            return redact(text, [self._api_key])
        return f"Stripe answered {status} while {what}"

    def _detail(self, exc: Exception) -> str:
        return redact(clip(str(exc) or type(exc).__name__), [self._api_key])


def _retryable(response: httpx.Response) -> bool:
    should_retry: str | None = response.headers.get("stripe-should-retry")
    if should_retry is not None:
        return should_retry.strip().lower() == "true"
    status = response.status_code
    # 409: another request with the same idempotency key is still executing (or a lock timeout).
    return status in {409, 429} or status >= 500


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _price_id(value: Any) -> str | None:
    """``default_price`` is an id, an expanded Price object, or null."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


#: Currencies whose smallest unit is the unit itself (Stripe's zero-decimal list).
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


def _format_amount(amount: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"
