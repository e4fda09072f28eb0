"""A local fake of the Stripe Products and Prices API, for tests.

Written from Stripe's public API reference, not from runhq's code:

- authentication: secret key as ``Authorization: Bearer <key>`` (or HTTP Basic with the key as
  user name); missing -> 401, wrong -> 401 ``Invalid API Key provided: sk_test_****1234``;
- request bodies are ``application/x-www-form-urlencoded``, nested parameters in brackets
  (``recurring[interval]=month``); unknown parameters -> 400 ``Received unknown parameter``;
- errors: ``{"error": {"type", "message", "code"?, "param"?}}`` with the HTTP status;
- ``GET /v1/products/{id}`` (unknown -> 404 ``resource_missing`` ``No such product: '…'``);
  ``POST /v1/products/{id}`` updates it (``default_price`` must be an active price of that
  product); ``POST /v1/prices`` creates a price (``currency`` required, ``product``,
  ``unit_amount`` a non-negative integer, ``recurring[interval]`` one of day/week/month/year,
  ``recurring[interval_count]``); ``GET /v1/prices/{id}``;
- idempotency (Stripe's "Idempotent requests"): a POST with ``Idempotency-Key`` (at most 255
  characters) has its status and body saved once the endpoint starts executing — not when
  authentication or parameter validation fails; the same key with the same endpoint and
  parameters answers the saved response again with ``Idempotent-Replayed: true`` and
  ``Original-Request: <first request id>``; the same key with another endpoint or other
  parameters -> 400 ``idempotency_error``. Keys on GET are ignored.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon
threads)::

    with FakeStripePrices() as fake:
        fake.add_product("prod_basic", "Basic", price_amount=1900, currency="eur")
        fake.fail(503, times=1)                    # next request answers 503 (not saved)
        fake.hang(0.5, path="/v1/prices")          # executes, then answers late (lost answer)
        ... fake.base_url, fake.api_key, fake.prices, fake.requests ...
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes._served import base_url_of, serve, shut

__all__ = ["DEFAULT_API_KEY", "FakeStripePrices", "RecordedRequest", "error_body"]

JSONDict = dict[str, Any]

DEFAULT_API_KEY = "sk_test_fakeRunhqStripePricesKey0123456789"
INTERVALS = ("day", "week", "month", "year")
_created = itertools.count(1_760_000_000)
_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_PRICE_PARAMS = {
    "currency",
    "product",
    "unit_amount",
    "recurring[interval]",
    "recurring[interval_count]",
    "nickname",
    "lookup_key",
    "active",
}
_PRODUCT_UPDATE_PARAMS = {"default_price", "name", "description", "active"}


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> JSONDict:
    """Stripe's error envelope."""
    error: JSONDict = {"type": type_, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return {"error": error}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    form: dict[str, list[str]]

    def param(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class _Scripted:
    status: int | None  # None: a hang
    body: Any
    seconds: float
    remaining: int | None
    method: str | None
    path: str | None
    headers: dict[str, str]


@dataclass
class _Saved:
    method: str
    path: str
    params: list[tuple[str, str]]
    status: int
    body: JSONDict
    request_id: str


@dataclass
class FakeStripePrices:
    """Context manager running the fake; ``products`` and ``prices`` map ids to objects."""

    api_key: str = DEFAULT_API_KEY
    products: dict[str, JSONDict] = field(default_factory=dict)
    prices: dict[str, JSONDict] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    _idempotency: dict[str, _Saved] = field(default_factory=dict)
    _scripted: list[_Scripted] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> FakeStripePrices:
        self._server, self._thread = serve(self, _Handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shut(self._server, self._thread)
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        return base_url_of(self._server, "FakeStripePrices")

    # -- setup ---------------------------------------------------------------------------------

    def add_product(
        self,
        product_id: str,
        name: str,
        *,
        price_amount: int | None = None,
        currency: str = "eur",
        interval: str = "month",
    ) -> JSONDict:
        """A product; with ``price_amount``, also its first recurring price as default."""
        now = next(_created)
        product: JSONDict = {
            "id": product_id,
            "object": "product",
            "active": True,
            "created": now,
            "default_price": None,
            "description": None,
            "livemode": False,
            "metadata": {},
            "name": name,
            "updated": now,
            "url": None,
        }
        with self._lock:
            self.products[product_id] = product
            if price_amount is not None:
                price = self._new_price(product_id, price_amount, currency, interval, 1)
                product["default_price"] = price["id"]
        return product

    def prices_of(self, product_id: str) -> list[JSONDict]:
        with self._lock:
            return [p for p in self.prices.values() if p["product"] == product_id]

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        times: int | None = 1,
        method: str | None = None,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (matching ``method``/``path`` if given) with
        ``status``, before the idempotency layer (like an overloaded front end: nothing
        executed, nothing saved). ``headers`` are added (e.g. ``Stripe-Should-Retry``)."""
        if body is None:
            if status == 429:
                body = error_body(
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                )
            elif status >= 500:
                body = error_body("An unknown error occurred", type_="api_error")
            else:
                body = error_body("The request could not be processed.")
        with self._lock:
            self._scripted.append(
                _Scripted(status, body, 0.0, times, method, path, dict(headers or {}))
            )

    def hang(
        self,
        seconds: float,
        *,
        times: int | None = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Execute the next ``times`` requests (matching ``method``/``path`` if given)
        normally, then wait ``seconds`` before answering: a client with a shorter timeout loses
        the answer."""
        with self._lock:
            self._scripted.append(_Scripted(None, None, seconds, times, method, path, {}))

    # -- behaviour -----------------------------------------------------------------------------

    def _take_script(self, method: str, path: str) -> _Scripted | None:
        with self._lock:
            for index, script in enumerate(self._scripted):
                if script.path is not None and script.path != path:
                    continue
                if script.method is not None and script.method != method:
                    continue
                if script.remaining is not None:
                    script.remaining -= 1
                    if script.remaining <= 0:
                        self._scripted.pop(index)
                return script
        return None

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str], float]:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, dict(headers), form))
        request_id = f"req_{uuid.uuid4().hex[:14]}"
        out = {"Request-Id": request_id, "Stripe-Version": headers.get("stripe-version", "")}
        script = self._take_script(method, path)
        if script is not None and script.status is not None:
            return script.status, script.body, {**out, **script.headers}, 0.0
        delay = script.seconds if script is not None else 0.0

        denied = self._authenticate(headers)
        if denied is not None:
            return denied[0], denied[1], out, delay

        key = headers.get("idempotency-key") if method == "POST" else None
        if key is not None:
            out["Idempotency-Key"] = key
            if len(key) > 255:
                return (
                    400,
                    error_body(
                        "Idempotency-Key must be at most 255 characters long.",
                        param="Idempotency-Key",
                    ),
                    out,
                    delay,
                )
        params = sorted((name, value) for name, values in form.items() for value in values)
        with self._lock:  # one request at a time per key: no concurrent-execution conflicts
            if key is not None:
                saved = self._idempotency.get(key)
                if saved is not None:
                    if (saved.method, saved.path, saved.params) != (method, path, params):
                        return (
                            400,
                            error_body(
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with. Try using a key other "
                                f"than '{key}' if you meant to execute a different request.",
                                type_="idempotency_error",
                            ),
                            out,
                            delay,
                        )
                    out["Idempotent-Replayed"] = "true"
                    out["Original-Request"] = saved.request_id
                    return saved.status, json.loads(json.dumps(saved.body)), out, delay
            status, answer, executed = self._route(method, path, form)
            if key is not None and executed:
                self._idempotency[key] = _Saved(method, path, params, status, answer, request_id)
        return status, answer, out, delay

    def _authenticate(self, headers: Mapping[str, str]) -> tuple[int, JSONDict] | None:
        authorization = headers.get("authorization", "")
        key: str | None = None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            key = credentials.strip()
        elif scheme.lower() == "basic" and credentials.strip():
            try:
                decoded = base64.b64decode(credentials.strip()).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            key = decoded.partition(":")[0] or None
        if key is None:
            return 401, error_body(_NO_KEY_MESSAGE)
        if key != self.api_key:
            masked = f"{key[:8]}{'*' * max(len(key) - 12, 4)}{key[-4:]}"
            return 401, error_body(f"Invalid API Key provided: {masked}")
        return None

    def _route(
        self, method: str, path: str, form: Mapping[str, list[str]]
    ) -> tuple[int, JSONDict, bool]:
        """(status, body, executed): ``executed`` is false for validation failures."""
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if method == "POST" and parts == ["v1", "prices"]:
            return self._create_price(form)
        if len(parts) == 3 and parts[:2] == ["v1", "products"]:
            if method == "GET":
                product = self.products.get(parts[2])
                if product is None:
                    return 404, _missing("product", parts[2], "id"), False
                return 200, json.loads(json.dumps(product)), True
            if method == "POST":
                return self._update_product(parts[2], form)
        if len(parts) == 3 and parts[:2] == ["v1", "prices"] and method == "GET":
            price = self.prices.get(parts[2])
            if price is None:
                return 404, _missing("price", parts[2], "id"), False
            return 200, json.loads(json.dumps(price)), True
        return (
            404,
            error_body(
                f"Unrecognized request URL ({method}: {path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
            False,
        )

    def _create_price(self, form: Mapping[str, list[str]]) -> tuple[int, JSONDict, bool]:
        for name in form:
            if name not in _PRICE_PARAMS and not name.startswith("metadata["):
                return 400, _unknown(name), False
        values = {name: items[-1] for name, items in form.items()}
        currency = values.get("currency")
        if not currency:
            return 400, _missing_param("currency"), False
        if len(currency) != 3 or not currency.isalpha():
            return 400, error_body(f"Invalid currency: {currency}.", param="currency"), False
        product_id = values.get("product")
        if not product_id:
            return 400, _missing_param("product"), False
        if product_id not in self.products:
            return 400, _missing("product", product_id, "product"), False
        amount_text = values.get("unit_amount")
        if amount_text is None:
            return 400, _missing_param("unit_amount"), False
        if not amount_text.isdigit():
            return 400, error_body(f"Invalid integer: {amount_text}", param="unit_amount"), False
        interval = values.get("recurring[interval]")
        if interval is not None and interval not in INTERVALS:
            return (
                400,
                error_body(
                    "Invalid recurring[interval]: must be one of day, month, week, or year",
                    param="recurring[interval]",
                ),
                False,
            )
        count_text = values.get("recurring[interval_count]", "1")
        if not count_text.isdigit() or int(count_text) < 1:
            return (
                400,
                error_body(f"Invalid integer: {count_text}", param="recurring[interval_count]"),
                False,
            )
        price = self._new_price(
            product_id, int(amount_text), currency.lower(), interval, int(count_text)
        )
        if "nickname" in values:
            price["nickname"] = values["nickname"]
        for name, value in values.items():
            if name.startswith("metadata[") and name.endswith("]"):
                price["metadata"][name[len("metadata[") : -1]] = value
        return 200, json.loads(json.dumps(price)), True

    def _update_product(
        self, product_id: str, form: Mapping[str, list[str]]
    ) -> tuple[int, JSONDict, bool]:
        product = self.products.get(product_id)
        if product is None:
            return 404, _missing("product", product_id, "id"), False
        for name in form:
            if name not in _PRODUCT_UPDATE_PARAMS and not name.startswith("metadata["):
                return 400, _unknown(name), False
        values = {name: items[-1] for name, items in form.items()}
        if "default_price" in values:
            price_id = values["default_price"]
            price = self.prices.get(price_id)
            if price is None:
                return 400, _missing("price", price_id, "default_price"), False
            if price["product"] != product_id:
                return (
                    400,
                    error_body(
                        f"The price `{price_id}` does not belong to product `{product_id}`.",
                        param="default_price",
                    ),
                    False,
                )
            if not price["active"]:
                return (
                    400,
                    error_body("The default price must be active.", param="default_price"),
                    False,
                )
            product["default_price"] = price_id
        for name in ("name", "description"):
            if name in values:
                product[name] = values[name]
        if "active" in values:
            product["active"] = values["active"] == "true"
        product["updated"] = next(_created)
        return 200, json.loads(json.dumps(product)), True

    def _new_price(
        self, product_id: str, amount: int, currency: str, interval: str | None, count: int
    ) -> JSONDict:
        price_id = f"price_{uuid.uuid4().hex[:24]}"
        recurring = (
            None
            if interval is None
            else {
                "aggregate_usage": None,
                "interval": interval,
                "interval_count": count,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        )
        price: JSONDict = {
            "id": price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": next(_created),
            "currency": currency,
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": product_id,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "type": "one_time" if recurring is None else "recurring",
            "unit_amount": amount,
            "unit_amount_decimal": str(amount),
        }
        self.prices[price_id] = price
        return price


def _missing(kind: str, object_id: str, param: str) -> JSONDict:
    return error_body(f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def _missing_param(name: str) -> JSONDict:
    return error_body(f"Missing required param: {name}.", code="parameter_missing", param=name)


def _unknown(name: str) -> JSONDict:
    return error_body(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeStripePrices/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake: FakeStripePrices = self.server.fake  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        status, answer, out, delay = fake._handle(method, path, headers, body)
        if delay:
            time.sleep(delay)
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in out.items():
                if value:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting
