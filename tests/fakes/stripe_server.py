"""A local fake of the Stripe REST API (subscriptions), for tests.

Written from Stripe's public API reference, not from runhq's code:

- authentication: secret key as ``Authorization: Bearer <key>`` (or HTTP Basic with the key as
  user name); missing key -> 401, wrong key -> 401 ``Invalid API Key provided: sk_test_****1234``;
- errors: ``{"error": {"type", "message", "code"?, "param"?}}`` with the HTTP status;
- list objects: ``{"object": "list", "url", "has_more", "data"}``, newest first (``created``
  descending), ``limit`` 1–100 (default 10), cursor ``starting_after=<object id>``;
- ``GET /v1/subscriptions`` filtered by ``status`` (default: every status except ``canceled``;
  ``all`` for everything); each subscription embeds ``items`` (a list object of subscription
  items, each with its ``price``) — set ``embedded_items_limit`` to make that embedded list
  partial (``has_more: true``);
- ``GET /v1/subscription_items?subscription=sub_…`` (paginated like any list).

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon
threads)::

    with FakeStripe() as fake:
        fake.subscriptions = [make_subscription("sub_1", "cus_1", [price_item(1000, "eur")])]
        fake.fail(503, times=1)      # next request answers 503, then normal service
        ... fake.base_url, fake.api_key, fake.requests ...
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._served import base_url_of, serve, shut

__all__ = [
    "DEFAULT_API_KEY",
    "FakeStripe",
    "RecordedRequest",
    "error_body",
    "make_subscription",
    "price_item",
]

JSONDict = dict[str, Any]

DEFAULT_API_KEY = "sk_test_fakeRunhqStripeKey0123456789"
_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_SUBSCRIPTION_STATUSES = frozenset(
    {
        "active",
        "all",
        "canceled",
        "ended",
        "incomplete",
        "incomplete_expired",
        "past_due",
        "paused",
        "trialing",
        "unpaid",
    }
)
_created_counter = itertools.count(1_700_000_000)


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


def _default_failure_body(status: int) -> JSONDict:
    if status == 429:
        return error_body(
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status >= 500:
        return error_body("An unknown error occurred", type_="api_error")
    return error_body("The request could not be processed.")


def price_item(
    unit_amount: int | None,
    currency: str = "eur",
    *,
    interval: str | None = "month",
    interval_count: int = 1,
    quantity: int | None = 1,
    usage_type: str = "licensed",
    billing_scheme: str = "per_unit",
    item_id: str | None = None,
    price_id: str | None = None,
) -> JSONDict:
    """A subscription item object with its embedded price object (``interval=None``: one-off)."""
    recurring: JSONDict | None = None
    if interval is not None:
        recurring = {
            "aggregate_usage": None,
            "interval": interval,
            "interval_count": interval_count,
            "trial_period_days": None,
            "usage_type": usage_type,
        }
    price: JSONDict = {
        "id": price_id or f"price_{uuid.uuid4().hex[:14]}",
        "object": "price",
        "active": True,
        "billing_scheme": billing_scheme,
        "currency": currency,
        "livemode": False,
        "product": "prod_fake",
        "recurring": recurring,
        "type": "recurring" if recurring is not None else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }
    item: JSONDict = {
        "id": item_id or f"si_{uuid.uuid4().hex[:14]}",
        "object": "subscription_item",
        "created": next(_created_counter),
        "metadata": {},
        "price": price,
        "subscription": None,  # filled by make_subscription
    }
    if quantity is not None:
        item["quantity"] = quantity
    return item


def make_subscription(
    sub_id: str,
    customer: str,
    items: Sequence[JSONDict],
    *,
    status: str = "active",
    created: int | None = None,
) -> JSONDict:
    """A subscription object; ``items`` are kept in full under ``items.data``."""
    data = []
    for item in items:
        item = dict(item)
        item["subscription"] = sub_id
        data.append(item)
    currency = data[0]["price"]["currency"] if data else "eur"
    return {
        "id": sub_id,
        "object": "subscription",
        "created": created if created is not None else next(_created_counter),
        "currency": currency,
        "customer": customer,
        "cancel_at_period_end": False,
        "livemode": False,
        "metadata": {},
        "status": status,
        "items": {
            "object": "list",
            "data": data,
            "has_more": False,
            "total_count": len(data),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
    }


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int | None  # None: until cleared


@dataclass
class FakeStripe:
    """Context manager running the fake; mutate ``subscriptions`` at any time."""

    api_key: str = DEFAULT_API_KEY
    subscriptions: list[JSONDict] = field(default_factory=list)
    #: When set, the items embedded in a listed subscription are cut to this many (has_more).
    embedded_items_limit: int | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> FakeStripe:
        self._server, self._thread = serve(self, _Handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shut(self._server, self._thread)
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        return base_url_of(self._server, "FakeStripe")

    # -- scripting -----------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (all of them if None) with ``status`` and ``body``
        (default: a Stripe error object fitting the status). Queued failures apply in order."""
        with self._lock:
            self._failures.append(
                _Failure(
                    status=status,
                    body=_default_failure_body(status) if body is None else body,
                    headers=dict(headers or {}),
                    remaining=times,
                )
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    # -- behaviour (called from the handler threads) --------------------------------------------

    def _record(self, request: RecordedRequest) -> _Failure | None:
        with self._lock:
            self.requests.append(request)
            if not self._failures:
                return None
            failure = self._failures[0]
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
            return failure

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

    def _handle_get(self, path: str, query: Mapping[str, list[str]]) -> tuple[int, JSONDict]:
        if path == "/v1/subscriptions":
            return self._list_subscriptions(query)
        if path == "/v1/subscription_items":
            return self._list_subscription_items(query)
        return 404, error_body(
            f"Unrecognized request URL (GET: {path}). Please see https://stripe.com/docs or we "
            "can help at https://support.stripe.com/."
        )

    def _list_subscriptions(self, query: Mapping[str, list[str]]) -> tuple[int, JSONDict]:
        status = _first(query, "status")
        if status is not None and status not in _SUBSCRIPTION_STATUSES:
            return 400, error_body(
                f"Invalid status: must be one of {', '.join(sorted(_SUBSCRIPTION_STATUSES))}",
                param="status",
            )
        with self._lock:
            subscriptions = [json.loads(json.dumps(sub)) for sub in self.subscriptions]
            items_limit = self.embedded_items_limit
        if status is None:
            subscriptions = [sub for sub in subscriptions if sub.get("status") != "canceled"]
        elif status == "ended":
            ended = {"canceled", "incomplete_expired"}
            subscriptions = [sub for sub in subscriptions if sub.get("status") in ended]
        elif status != "all":
            subscriptions = [sub for sub in subscriptions if sub.get("status") == status]
        if items_limit is not None:
            for sub in subscriptions:
                items = sub["items"]
                if len(items["data"]) > items_limit:
                    items["data"] = items["data"][:items_limit]
                    items["has_more"] = True
        return _paginate(subscriptions, query, url="/v1/subscriptions", kind="subscription")

    def _list_subscription_items(self, query: Mapping[str, list[str]]) -> tuple[int, JSONDict]:
        sub_id = _first(query, "subscription")
        if not sub_id:
            return 400, error_body("Missing required param: subscription.", param="subscription")
        with self._lock:
            match = [sub for sub in self.subscriptions if sub.get("id") == sub_id]
            items = json.loads(json.dumps(match[0]["items"]["data"])) if match else None
        if items is None:
            return 404, error_body(
                f"No such subscription: '{sub_id}'", code="resource_missing", param="subscription"
            )
        return _paginate(items, query, url="/v1/subscription_items", kind="subscription_item")


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _paginate(
    objects: Iterable[JSONDict], query: Mapping[str, list[str]], *, url: str, kind: str
) -> tuple[int, JSONDict]:
    ordered = sorted(objects, key=lambda obj: obj.get("created", 0), reverse=True)
    raw_limit = _first(query, "limit")
    limit = 10
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            return 400, error_body(f"Invalid integer: {raw_limit}", param="limit")
        if not 1 <= limit <= 100:
            return 400, error_body(
                "This value must be greater than or equal to 1 and less than or equal to 100.",
                param="limit",
            )
    starting_after = _first(query, "starting_after")
    ending_before = _first(query, "ending_before")
    if starting_after is not None and ending_before is not None:
        return 400, error_body(
            "You may only specify one of these parameters: starting_after, ending_before.",
            param="starting_after",
        )
    ids = [obj.get("id") for obj in ordered]
    start = 0
    if starting_after is not None:
        if starting_after not in ids:
            return 404, error_body(
                f"No such {kind}: '{starting_after}'",
                code="resource_missing",
                param="starting_after",
            )
        start = ids.index(starting_after) + 1
    page = ordered[start : start + limit]
    if ending_before is not None:
        if ending_before not in ids:
            return 404, error_body(
                f"No such {kind}: '{ending_before}'",
                code="resource_missing",
                param="ending_before",
            )
        end = ids.index(ending_before)
        page = ordered[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        has_more = start + limit < len(ordered)
    return 200, {"object": "list", "url": url, "has_more": has_more, "data": page}


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeStripe/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def _fake(self) -> FakeStripe:
        fake: FakeStripe = self.server.fake  # type: ignore[attr-defined]
        return fake

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self._fake()
        split = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(
            method=method,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
        )
        length = int(headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        failure = fake._record(request)
        if failure is not None:
            self._send(failure.status, failure.body, failure.headers)
            return
        denied = fake._authenticate(headers)
        if denied is not None:
            self._send(*denied)
            return
        if method != "GET":
            self._send(
                404,
                error_body(
                    f"Unrecognized request URL ({method}: {split.path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/."
                ),
            )
            return
        self._send(*fake._handle_get(split.path, request.query))

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
