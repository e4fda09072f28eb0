"""Web search connector: the Brave Search Web Search API.

``GET /res/v1/web/search?q=…&count=…`` with the ``X-Subscription-Token`` header; the web results
are in ``web.results[]`` (``title``, ``url``, ``description``). Brave highlights query terms with
``<strong>`` tags and HTML entities in titles and descriptions: they are reduced to plain text.
A response without a ``web`` section simply has no web results.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import httpx

from runhq.context.connectors.base import (
    DEFAULT_BACKOFF,
    Backoff,
    ConnectorUnavailable,
    get_json,
)

__all__ = ["MAX_COUNT", "MAX_QUERY_CHARS", "MAX_QUERY_WORDS", "fetch_web_search_facts"]

PLATFORM = "Brave Search"
#: Documented limits of the Web Search API.
MAX_COUNT = 20
MAX_QUERY_CHARS = 400
MAX_QUERY_WORDS = 50

_TAG = re.compile(r"<[^>]*>")


def fetch_web_search_facts(
    client: httpx.Client,
    *,
    api_key: str,
    query: str,
    base_url: str = "https://api.search.brave.com",
    count: int = 8,
    attempts: int = 3,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> dict[str, Any]:
    """Top web results for ``query``: ``{"query", "results": [{"title", "url", "description"}]}``.

    ``count`` is clamped to Brave's 1–20. Raises ValueError for an empty or over-long query and
    :class:`ConnectorUnavailable` when Brave is unconfigured, unreachable or refuses.
    """
    query = " ".join(query.split())
    if not query:
        raise ValueError("the web search query is empty")
    if len(query) > MAX_QUERY_CHARS or len(query.split()) > MAX_QUERY_WORDS:
        raise ValueError(
            f"the web search query is too long (Brave accepts at most {MAX_QUERY_CHARS} "
            f"characters and {MAX_QUERY_WORDS} words)"
        )
    if not api_key.strip():
        raise ConnectorUnavailable("Brave Search is not configured (no API key)")
    body = get_json(
        client,
        f"{base_url.rstrip('/')}/res/v1/web/search",
        headers={"Accept": "application/json", "X-Subscription-Token": api_key.strip()},
        params={"q": query, "count": max(1, min(count, MAX_COUNT))},
        attempts=attempts,
        backoff=backoff,
        platform=PLATFORM,
    )
    if not isinstance(body, Mapping):
        raise ConnectorUnavailable("Brave Search returned an unexpected response shape")
    web = body.get("web")
    raw_results = web.get("results") if isinstance(web, Mapping) else None
    results: list[dict[str, str]] = []
    if isinstance(raw_results, list):
        for result in raw_results:
            if not isinstance(result, Mapping):
                continue
            url = result.get("url")
            if not isinstance(url, str) or not url:
                continue
            results.append(
                {
                    "title": _plain(result.get("title")),
                    "url": url,
                    "description": _plain(result.get("description")),
                }
            )
    return {"query": query, "results": results}


def _plain(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(html.unescape(_TAG.sub("", value)).split())
