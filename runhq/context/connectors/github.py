"""GitHub connector: what happened recently in one repository.

Reads, with GitHub's documented REST headers (``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version: 2022-11-28``, ``Authorization: Bearer <token>`` when a token is given):

- ``GET /repos/{owner}/{repo}/commits?since=…&per_page=30`` (following ``Link: rel="next"`` a few
  pages, so the count is exact for ordinary weeks and flagged as a lower bound otherwise);
- ``GET /repos/{owner}/{repo}/pulls?state=open&per_page=30``;
- ``GET /repos/{owner}/{repo}/actions/runs?per_page=20``.

Without a token only public repositories are visible (and at a lower rate limit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from runhq.context.connectors.base import (
    DEFAULT_BACKOFF,
    Backoff,
    ConnectorUnavailable,
    JsonResponse,
    QueryParams,
    get_json_response,
)

__all__ = ["FAILED_CONCLUSIONS", "fetch_github_facts", "parse_repository"]

PLATFORM = "GitHub"
API_VERSION = "2022-11-28"
COMMITS_PER_PAGE = 30
#: Commit pages followed at most (5 × 30 = 150 commits) before the count becomes a lower bound.
MAX_COMMIT_PAGES = 5
PULLS_PER_PAGE = 30
RUNS_PER_PAGE = 20
RECENT_COMMITS = 10
#: Conclusions of a completed workflow run that count as a failure.
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_REPOSITORY = re.compile(rf"({_OWNER})/({_NAME})")
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_MAX_TEXT = 200


def parse_repository(repository: str) -> tuple[str, str]:
    """Split ``owner/name``; raise ValueError if it is not a valid GitHub repository slug."""
    match = _REPOSITORY.fullmatch(repository.strip())
    if match is None or match.group(2) in {".", ".."}:
        raise ValueError(
            f"invalid GitHub repository {repository!r}: expected 'owner/name', e.g. 'acme/api'"
        )
    return match.group(1), match.group(2)


def fetch_github_facts(
    client: httpx.Client,
    *,
    token: str | None,
    repository: str,
    api_url: str = "https://api.github.com",
    since_days: int = 7,
    now: datetime,
    attempts: int = 3,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> dict[str, Any]:
    """Recent commits, open pull requests and workflow runs of ``repository``.

    ``now`` must be timezone-aware. Raises ValueError for a malformed ``repository`` (or naive
    ``now``, or ``since_days`` < 1) and :class:`ConnectorUnavailable` when GitHub cannot answer.
    """
    owner, name = parse_repository(repository)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if since_days < 1:
        raise ValueError("since_days must be at least 1")
    since = (now - timedelta(days=since_days)).astimezone(UTC)
    since_text = since.strftime("%Y-%m-%dT%H:%M:%SZ")

    api = _Api(client, api_url.rstrip("/"), token, attempts, backoff)
    repo_path = f"/repos/{owner}/{name}"

    commits, commits_truncated = api.commits(repo_path, since_text)
    pulls_page = api.get(f"{repo_path}/pulls", {"state": "open", "per_page": PULLS_PER_PAGE})
    runs_page = api.get(f"{repo_path}/actions/runs", {"per_page": RUNS_PER_PAGE})

    pulls = _list_of_dicts(pulls_page.data, "pull requests")
    runs_body = runs_page.data
    if not isinstance(runs_body, Mapping) or not isinstance(runs_body.get("workflow_runs"), list):
        raise ConnectorUnavailable("GitHub returned an unexpected shape for workflow runs")
    runs = [run for run in runs_body["workflow_runs"] if isinstance(run, Mapping)]
    completed = [run for run in runs if run.get("status") == "completed"]
    failed = [run for run in completed if run.get("conclusion") in FAILED_CONCLUSIONS]
    total_runs = runs_body.get("total_count")

    return {
        "repository": f"{owner}/{name}",
        "since": since_text,
        "window_days": since_days,
        "commits": {
            "count": len(commits),
            "count_is_lower_bound": commits_truncated,
            "recent": [_commit_summary(commit) for commit in commits[:RECENT_COMMITS]],
        },
        "pull_requests": {
            "open_count": len(pulls),
            "open_count_is_lower_bound": _has_next(pulls_page),
            "open": [_pull_summary(pull) for pull in pulls],
        },
        "workflow_runs": {
            "total_count": total_runs if isinstance(total_runs, int) else len(runs),
            "recent": [_run_summary(run) for run in runs],
            "completed": len(completed),
            "failed": len(failed),
            "failure_rate": round(len(failed) / len(completed), 4) if completed else None,
        },
    }


class _Api:
    def __init__(
        self,
        client: httpx.Client,
        api_url: str,
        token: str | None,
        attempts: int,
        backoff: Backoff,
    ) -> None:
        self._client = client
        self._api_url = api_url
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        self._has_token = bool(token and token.strip())
        if token and token.strip():
            self._headers["Authorization"] = f"Bearer {token.strip()}"
        self._attempts = attempts
        self._backoff = backoff

    def get(self, path_or_url: str, params: QueryParams | None = None) -> JsonResponse:
        url = path_or_url if "://" in path_or_url else f"{self._api_url}{path_or_url}"
        try:
            return get_json_response(
                self._client,
                url,
                headers=self._headers,
                params=params,
                attempts=self._attempts,
                backoff=self._backoff,
                platform=PLATFORM,
                # GitHub answers 301 for renamed repositories; httpx drops the Authorization
                # header if a redirect ever leaves the API's origin.
                follow_redirects=True,
            )
        except ConnectorUnavailable as exc:
            if exc.status_code == 404 and not self._has_token:
                raise ConnectorUnavailable(
                    f"{exc.reason} (the repository does not exist, or is private and no GitHub "
                    "token is configured)",
                    status_code=404,
                ) from None
            raise

    def commits(self, repo_path: str, since: str) -> tuple[list[Mapping[str, Any]], bool]:
        """Commits since ``since``, following ``Link`` pages; flag True if pages were left."""
        collected: list[Mapping[str, Any]] = []
        try:
            page = self.get(f"{repo_path}/commits", {"since": since, "per_page": COMMITS_PER_PAGE})
        except ConnectorUnavailable as exc:
            if exc.status_code == 409:  # documented: "Git Repository is empty."
                return [], False
            raise
        for page_number in range(1, MAX_COMMIT_PAGES + 1):
            collected.extend(_list_of_dicts(page.data, "commits"))
            next_url = _next_link(page)
            if next_url is None:
                return collected, False
            if page_number == MAX_COMMIT_PAGES or not self._same_origin(next_url):
                return collected, True
            page = self.get(next_url)
        return collected, True  # pragma: no cover - the loop always returns

    def _same_origin(self, url: str) -> bool:
        try:
            target, api = httpx.URL(url), httpx.URL(self._api_url)
        except httpx.InvalidURL:
            return False
        return (target.scheme, target.host, target.port) == (api.scheme, api.host, api.port)


def _next_link(page: JsonResponse) -> str | None:
    link = page.headers.get("link")
    if not link:
        return None
    for part in link.split(","):
        match = _NEXT_LINK.search(part)
        if match:
            return match.group(1)
    return None


def _has_next(page: JsonResponse) -> bool:
    return _next_link(page) is not None


def _list_of_dicts(data: object, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(data, list):
        raise ConnectorUnavailable(f"GitHub returned an unexpected shape for {what}")
    return [item for item in data if isinstance(item, Mapping)]


def _commit_summary(commit: Mapping[str, Any]) -> dict[str, Any]:
    detail = _mapping(commit.get("commit"))
    git_author = _mapping(detail.get("author"))
    user = _mapping(commit.get("author"))
    message = _text(detail.get("message")) or ""
    sha = _text(commit.get("sha")) or ""
    return {
        "sha": sha[:7],
        "message": _clip(message.splitlines()[0] if message else ""),
        "author": _text(git_author.get("name")) or _text(user.get("login")),
        "login": _text(user.get("login")),
        "date": _text(git_author.get("date")),
    }


def _pull_summary(pull: Mapping[str, Any]) -> dict[str, Any]:
    number = pull.get("number")
    return {
        "number": number if isinstance(number, int) else None,
        "title": _clip(_text(pull.get("title")) or ""),
        "author": _text(_mapping(pull.get("user")).get("login")),
        "created_at": _text(pull.get("created_at")),
        "draft": pull.get("draft") is True,
    }


def _run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": _text(run.get("name")),
        "status": _text(run.get("status")),
        "conclusion": _text(run.get("conclusion")),
        "head_branch": _text(run.get("head_branch")),
        "created_at": _text(run.get("created_at")),
    }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
