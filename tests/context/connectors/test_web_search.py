"""Web search connector against a local fake of the Brave Search Web Search API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runhq.context.connectors.base import Backoff, ConnectorUnavailable
from runhq.context.connectors.web_search import fetch_web_search_facts
from tests.fakes.brave_server import FakeBrave, make_result

FAST = Backoff(base=0.001, maximum=0.005, retry_after_cap=0.01)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


@pytest.fixture
def fake() -> Iterator[FakeBrave]:
    with FakeBrave() as server:
        yield server


def search(
    client: httpx.Client, fake: FakeBrave, query: str, *, count: int = 8, api_key: str = ""
) -> dict[str, Any]:
    return fetch_web_search_facts(
        client,
        api_key=api_key or fake.api_key,
        query=query,
        base_url=fake.base_url,
        count=count,
        backoff=FAST,
    )


def test_results_are_mapped_to_plain_text(client: httpx.Client, fake: FakeBrave) -> None:
    fake.set_results(
        "ai operations hq",
        [
            make_result(
                "runhq &amp; friends", "https://runhq.example/", "An AI operations HQ for teams."
            ),
            make_result("Other", "https://other.example/a", "Nothing &quot;special&quot; here."),
        ],
    )

    facts = search(client, fake, "  AI   operations HQ ")

    assert facts == {
        "query": "AI operations HQ",
        "results": [
            {
                "title": "runhq & friends",
                "url": "https://runhq.example/",
                "description": "An AI operations HQ for teams.",
            },
            {
                "title": "Other",
                "url": "https://other.example/a",
                "description": 'Nothing "special" here.',
            },
        ],
    }
    (request,) = fake.requests
    assert request.path == "/res/v1/web/search"
    assert request.param("q") == "AI operations HQ"
    assert request.param("count") == "8"
    assert request.headers["x-subscription-token"] == fake.api_key
    assert request.headers["accept"] == "application/json"


def test_count_is_clamped_to_brave_limits(client: httpx.Client, fake: FakeBrave) -> None:
    fake.default_results = [make_result(f"r{i}", f"https://e.example/{i}", "d") for i in range(30)]
    facts = search(client, fake, "anything", count=50)
    assert len(facts["results"]) == 20
    assert fake.requests[0].param("count") == "20"


def test_no_web_section_means_no_results(client: httpx.Client, fake: FakeBrave) -> None:
    assert search(client, fake, "nothing matches this") == {
        "query": "nothing matches this",
        "results": [],
    }


def test_rate_limited_once_is_retried(client: httpx.Client, fake: FakeBrave) -> None:
    fake.default_results = [make_result("t", "https://t.example/", "d")]
    fake.rate_limit(times=1, reset_seconds=30)  # X-RateLimit-Reset is honoured, within the cap
    facts = search(client, fake, "retry me")
    assert [r["url"] for r in facts["results"]] == ["https://t.example/"]
    assert len(fake.requests) == 2


def test_persistent_rate_limit_is_unavailable(client: httpx.Client, fake: FakeBrave) -> None:
    fake.rate_limit()
    with pytest.raises(ConnectorUnavailable) as caught:
        search(client, fake, "too often")
    assert caught.value.reason == (
        "Brave Search answered 429: Request rate limit exceeded for plan. (after 3 attempts)"
    )
    assert caught.value.status_code == 429
    assert len(fake.requests) == 3


def test_invalid_token_is_unavailable_and_not_retried(
    client: httpx.Client, fake: FakeBrave
) -> None:
    wrong = "BSAwrongWrongWrong000111222333"
    with pytest.raises(ConnectorUnavailable) as caught:
        search(client, fake, "x", api_key=wrong)
    assert caught.value.reason == (
        "Brave Search answered 422: The provided subscription token is invalid."
    )
    assert wrong not in caught.value.reason
    assert len(fake.requests) == 1


def test_missing_key_is_unavailable(client: httpx.Client, fake: FakeBrave) -> None:
    with pytest.raises(ConnectorUnavailable, match="not configured"):
        fetch_web_search_facts(client, api_key="", query="x", base_url=fake.base_url)
    assert fake.requests == []


def test_connection_refused_is_unavailable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectorUnavailable, match="could not reach Brave Search"):
        fetch_web_search_facts(
            client, api_key="k" * 20, query="x", base_url=f"http://127.0.0.1:{port}", backoff=FAST
        )


@pytest.mark.parametrize("query", ["", "   ", "x" * 401, " ".join(["w"] * 51)])
def test_bad_query_is_a_value_error(client: httpx.Client, query: str) -> None:
    with pytest.raises(ValueError, match="query"):
        fetch_web_search_facts(client, api_key="k", query=query)
