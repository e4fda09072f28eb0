"""A local fake of the GitHub REST API (repository activity), for tests.

Written from GitHub's public REST reference, not from runhq's code:

- headers: ``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version`` (an unknown
  version -> 400); token as ``Authorization: Bearer <token>`` (or ``token <token>``); a wrong
  token -> 401 ``Bad credentials``; a private repository without a valid token -> 404 (GitHub
  does not reveal that it exists);
- errors: ``{"message", "documentation_url", "status"}``;
- pagination: ``per_page`` (default 30, max 100) and ``page`` (1-based), with a ``Link`` header
  carrying ``rel="next"``, ``rel="last"``, ``rel="first"``, ``rel="prev"`` absolute URLs;
- ``GET /repos/{owner}/{repo}/commits?since=`` (newest first; an empty repository -> 409
  ``Git Repository is empty.``), ``GET /repos/{owner}/{repo}/pulls?state=open|closed|all``
  (newest first), ``GET /repos/{owner}/{repo}/actions/runs`` ->
  ``{"total_count", "workflow_runs"}``.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon
threads)::

    with FakeGitHub() as fake:
        fake.add_repository("acme/api", commits=[make_commit(...)], pulls=[...], runs=[...])
        fake.fail(502, times=1)
"""

from __future__ import annotations

import json
import threading
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes._served import base_url_of, serve, shut

__all__ = [
    "DEFAULT_TOKEN",
    "FakeGitHub",
    "RecordedRequest",
    "Repository",
    "error_body",
    "make_commit",
    "make_pull",
    "make_run",
]

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "ghp_fakeRunhqGitHubToken0123456789abcdef"
SUPPORTED_API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
_DOCS = "https://docs.github.com/rest"


def error_body(message: str, status: int, documentation_url: str = _DOCS) -> JSONDict:
    """GitHub's error body."""
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("use timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_commit(
    sha: str,
    message: str,
    *,
    author_name: str,
    date: datetime,
    login: str | None = None,
) -> JSONDict:
    """A commit object as listed by ``GET /repos/{owner}/{repo}/commits``."""
    email = f"{author_name.lower().replace(' ', '.')}@example.com"
    person = {"name": author_name, "email": email, "date": _iso(date)}
    user = (
        None
        if login is None
        else {"login": login, "id": zlib.crc32(login.encode()), "type": "User"}
    )
    return {
        "sha": sha,
        "node_id": f"C_{sha[:10]}",
        "commit": {
            "author": dict(person),
            "committer": dict(person),
            "message": message,
            "comment_count": 0,
        },
        "author": user,
        "committer": user,
        "parents": [],
        "html_url": f"https://github.com/fake/fake/commit/{sha}",
    }


def make_pull(
    number: int,
    title: str,
    *,
    login: str,
    created_at: datetime,
    draft: bool = False,
    state: str = "open",
) -> JSONDict:
    """A pull request object as listed by ``GET /repos/{owner}/{repo}/pulls``."""
    return {
        "number": number,
        "state": state,
        "title": title,
        "user": {"login": login, "type": "User"},
        "draft": draft,
        "created_at": _iso(created_at),
        "updated_at": _iso(created_at),
        "html_url": f"https://github.com/fake/fake/pull/{number}",
    }


def make_run(
    run_id: int,
    name: str,
    *,
    status: str,
    conclusion: str | None,
    head_branch: str = "main",
    created_at: datetime,
    event: str = "push",
) -> JSONDict:
    """A workflow run object as listed by ``GET /repos/{owner}/{repo}/actions/runs``."""
    return {
        "id": run_id,
        "name": name,
        "head_branch": head_branch,
        "event": event,
        "status": status,
        "conclusion": conclusion,
        "run_number": run_id,
        "created_at": _iso(created_at),
        "updated_at": _iso(created_at),
        "html_url": f"https://github.com/fake/fake/actions/runs/{run_id}",
    }


@dataclass
class Repository:
    commits: list[JSONDict] = field(default_factory=list)
    pulls: list[JSONDict] = field(default_factory=list)
    runs: list[JSONDict] = field(default_factory=list)
    private: bool = False
    #: An empty Git repository: the commits endpoint answers 409.
    empty: bool = False


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
    remaining: int | None


@dataclass
class FakeGitHub:
    """Context manager running the fake; ``repositories`` maps ``owner/name`` to its data."""

    token: str = DEFAULT_TOKEN
    repositories: dict[str, Repository] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> FakeGitHub:
        self._server, self._thread = serve(self, _Handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shut(self._server, self._thread)
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        return base_url_of(self._server, "FakeGitHub")

    def add_repository(
        self,
        full_name: str,
        *,
        commits: Sequence[JSONDict] = (),
        pulls: Sequence[JSONDict] = (),
        runs: Sequence[JSONDict] = (),
        private: bool = False,
        empty: bool = False,
    ) -> Repository:
        repo = Repository(list(commits), list(pulls), list(runs), private=private, empty=empty)
        with self._lock:
            self.repositories[full_name.lower()] = repo
        return repo

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (all if None) with ``status`` and ``body``."""
        default = error_body("Server Error" if status >= 500 else "Request failed", status)
        with self._lock:
            self._failures.append(
                _Failure(status, default if body is None else body, dict(headers or {}), times)
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    # -- behaviour -----------------------------------------------------------------------------

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

    def _handle(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        version = headers.get("x-github-api-version")
        if version is not None and version not in SUPPORTED_API_VERSIONS:
            return 400, error_body(f"API version '{version}' is not supported.", 400), {}
        authorization = headers.get("authorization")
        authenticated = False
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() not in {"bearer", "token"} or credentials.strip() != self.token:
                return 401, error_body("Bad credentials", 401), {}
            authenticated = True
        if method != "GET":
            return 404, error_body("Not Found", 404), {}
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos":
            return 404, error_body("Not Found", 404), {}
        full_name = f"{parts[1]}/{parts[2]}".lower()
        resource = "/".join(parts[3:])
        with self._lock:
            repo = self.repositories.get(full_name)
            snapshot = None if repo is None else json.loads(json.dumps(repo.__dict__))
        if snapshot is None or (snapshot["private"] and not authenticated):
            return 404, error_body("Not Found", 404), {}
        if resource == "commits":
            if snapshot["empty"]:
                return 409, error_body("Git Repository is empty.", 409), {}
            commits = sorted(
                snapshot["commits"], key=lambda c: c["commit"]["committer"]["date"], reverse=True
            )
            since = _first(query, "since")
            if since is not None:
                try:
                    threshold = _parse_time(since)
                except ValueError:
                    return 422, error_body("Invalid request: since is not a timestamp.", 422), {}
                commits = [
                    c for c in commits if _parse_time(c["commit"]["committer"]["date"]) >= threshold
                ]
            return self._page(path, query, commits, wrap=None)
        if resource == "pulls":
            state = _first(query, "state") or "open"
            if state not in {"open", "closed", "all"}:
                return 422, error_body("Validation Failed", 422), {}
            pulls = [p for p in snapshot["pulls"] if state == "all" or p["state"] == state]
            pulls.sort(key=lambda p: p["created_at"], reverse=True)
            return self._page(path, query, pulls, wrap=None)
        if resource == "actions/runs":
            runs = sorted(snapshot["runs"], key=lambda r: r["created_at"], reverse=True)
            return self._page(path, query, runs, wrap="workflow_runs")
        return 404, error_body("Not Found", 404), {}

    def _page(
        self,
        path: str,
        query: Mapping[str, list[str]],
        objects: list[JSONDict],
        *,
        wrap: str | None,
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            per_page = min(int(_first(query, "per_page") or 30), 100)
            page = max(int(_first(query, "page") or 1), 1)
        except ValueError:
            return 422, error_body("Validation Failed", 422), {}
        per_page = max(per_page, 1)
        chunk = objects[(page - 1) * per_page : page * per_page]
        last = max((len(objects) + per_page - 1) // per_page, 1)
        links: list[str] = []

        def link(number: int, rel: str) -> str:
            params = {key: values[0] for key, values in query.items() if values}
            params["page"] = str(number)
            return f'<{self.base_url}{path}?{urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        body: Any = {"total_count": len(objects), wrap: chunk} if wrap else chunk
        return 200, body, headers


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp without timezone")
    return moment


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeGitHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake: FakeGitHub = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        failure = fake._record(RecordedRequest(method, split.path, query, headers))
        if failure is not None:
            self._send(failure.status, failure.body, failure.headers)
            return
        self._send(*fake._handle(method, split.path, query, headers))

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-GitHub-Request-Id", uuid.uuid4().hex[:16].upper())
        self.send_header("X-RateLimit-Limit", "5000")
        self.send_header("X-RateLimit-Remaining", "4999")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
