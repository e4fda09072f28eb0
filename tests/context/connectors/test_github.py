"""GitHub connector against a local fake of GitHub's REST API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from runhq.context.connectors.base import Backoff, ConnectorUnavailable
from runhq.context.connectors.github import fetch_github_facts, parse_repository
from tests.fakes.github_server import FakeGitHub, make_commit, make_pull, make_run

FAST = Backoff(base=0.001, maximum=0.005, retry_after_cap=0.01)
NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def commits(
    n: int, *, newest: datetime, step: timedelta = timedelta(hours=1)
) -> list[dict[str, Any]]:
    return [
        make_commit(
            f"{i:040x}",
            f"Change number {i}\n\nLonger body of change {i}.",
            author_name=f"Dev {i % 3}",
            login=f"dev{i % 3}",
            date=newest - i * step,
        )
        for i in range(n)
    ]


def github(
    client: httpx.Client,
    fake: FakeGitHub,
    repository: str = "acme/api",
    *,
    token: str | None = None,
    anonymous: bool = False,
    since_days: int = 7,
) -> dict[str, Any]:
    return fetch_github_facts(
        client,
        token=None if anonymous else (token or fake.token),
        repository=repository,
        api_url=fake.base_url,
        since_days=since_days,
        now=NOW,
        backoff=FAST,
    )


def test_summary_of_commits_pulls_and_runs(client: httpx.Client, fake: FakeGitHub) -> None:
    recent = commits(12, newest=NOW - timedelta(hours=2), step=timedelta(hours=10))
    old = commits(3, newest=NOW - timedelta(days=9))
    fake.add_repository(
        "acme/api",
        commits=recent + old,
        pulls=[
            make_pull(41, "Add billing page", login="ana", created_at=NOW - timedelta(days=1)),
            make_pull(
                40, "WIP: new engine", login="bo", created_at=NOW - timedelta(days=2), draft=True
            ),
            make_pull(39, "Fix typo", login="cy", created_at=NOW - timedelta(days=3)),
            make_pull(38, "Old", login="cy", created_at=NOW - timedelta(days=4), state="closed"),
        ],
        runs=[
            make_run(
                6,
                "CI",
                status="in_progress",
                conclusion=None,
                created_at=NOW - timedelta(minutes=5),
            ),
            make_run(
                5,
                "CI",
                status="completed",
                conclusion="success",
                created_at=NOW - timedelta(hours=1),
            ),
            make_run(
                4,
                "CI",
                status="completed",
                conclusion="failure",
                created_at=NOW - timedelta(hours=2),
            ),
            make_run(
                3,
                "Deploy",
                status="completed",
                conclusion="timed_out",
                head_branch="release",
                created_at=NOW - timedelta(hours=3),
            ),
            make_run(
                2,
                "CI",
                status="completed",
                conclusion="success",
                created_at=NOW - timedelta(hours=4),
            ),
            make_run(
                1,
                "CI",
                status="completed",
                conclusion="cancelled",
                created_at=NOW - timedelta(hours=5),
            ),
        ],
    )

    facts = github(client, fake)

    assert facts["repository"] == "acme/api"
    assert facts["since"] == "2025-06-03T12:00:00Z"
    assert facts["commits"]["count"] == 12
    assert facts["commits"]["count_is_lower_bound"] is False
    assert len(facts["commits"]["recent"]) == 10
    assert facts["commits"]["recent"][0] == {
        "sha": "0000000",
        "message": "Change number 0",
        "author": "Dev 0",
        "login": "dev0",
        "date": "2025-06-10T10:00:00Z",
    }
    pulls = facts["pull_requests"]
    assert pulls["open_count"] == 3
    assert pulls["open_count_is_lower_bound"] is False
    assert pulls["open"][1] == {
        "number": 40,
        "title": "WIP: new engine",
        "author": "bo",
        "created_at": "2025-06-08T12:00:00Z",
        "draft": True,
    }
    runs = facts["workflow_runs"]
    assert runs["total_count"] == 6
    assert runs["recent"][3] == {
        "name": "Deploy",
        "status": "completed",
        "conclusion": "timed_out",
        "head_branch": "release",
        "created_at": "2025-06-10T09:00:00Z",
    }
    assert (runs["completed"], runs["failed"]) == (5, 2)
    assert runs["failure_rate"] == 0.4


def test_documented_headers_and_parameters(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/api")
    github(client, fake, since_days=3)

    paths = [r.path for r in fake.requests]
    assert paths == [
        "/repos/acme/api/commits",
        "/repos/acme/api/pulls",
        "/repos/acme/api/actions/runs",
    ]
    for request in fake.requests:
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert request.headers["authorization"] == f"Bearer {fake.token}"
    commits_req, pulls_req, runs_req = fake.requests
    assert commits_req.param("since") == "2025-06-07T12:00:00Z"
    assert commits_req.param("per_page") == "30"
    assert (pulls_req.param("state"), pulls_req.param("per_page")) == ("open", "30")
    assert runs_req.param("per_page") == "20"


def test_no_runs_means_no_failure_rate(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/api")
    facts = github(client, fake)
    assert facts["workflow_runs"]["failure_rate"] is None
    assert facts["commits"]["count"] == 0


def test_commit_pages_are_followed_then_counted_as_lower_bound(
    client: httpx.Client, fake: FakeGitHub
) -> None:
    fake.add_repository("acme/api", commits=commits(70, newest=NOW, step=timedelta(minutes=30)))
    facts = github(client, fake)
    assert facts["commits"]["count"] == 70
    assert facts["commits"]["count_is_lower_bound"] is False
    pages = [r.param("page") for r in fake.requests_to("/repos/acme/api/commits")]
    assert pages == [None, "2", "3"]

    fake.add_repository("acme/api", commits=commits(200, newest=NOW, step=timedelta(minutes=30)))
    facts = github(client, fake)
    assert facts["commits"]["count"] == 150
    assert facts["commits"]["count_is_lower_bound"] is True


def test_public_repository_without_token(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/api", commits=commits(2, newest=NOW))
    facts = github(client, fake, anonymous=True)
    assert facts["commits"]["count"] == 2
    assert all("authorization" not in r.headers for r in fake.requests)


def test_private_repository_without_token_is_unavailable_with_a_hint(
    client: httpx.Client, fake: FakeGitHub
) -> None:
    fake.add_repository("acme/secret", private=True)
    with pytest.raises(ConnectorUnavailable) as caught:
        github(client, fake, "acme/secret", anonymous=True)
    assert caught.value.reason.startswith("GitHub answered 404: Not Found")
    assert "no GitHub token is configured" in caught.value.reason


def test_bad_credentials(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/api")
    bad = "ghp_definitelyNotTheRightToken000000000000"
    with pytest.raises(ConnectorUnavailable) as caught:
        github(client, fake, token=bad)
    assert caught.value.reason == "GitHub answered 401: Bad credentials"
    assert bad not in caught.value.reason
    assert len(fake.requests) == 1


def test_empty_repository_has_no_commits(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/new", empty=True)
    facts = github(client, fake, "acme/new")
    assert facts["commits"] == {"count": 0, "count_is_lower_bound": False, "recent": []}


def test_transient_502_is_retried(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/api", commits=commits(1, newest=NOW))
    fake.fail(502, times=2)
    facts = github(client, fake)
    assert facts["commits"]["count"] == 1
    assert len(fake.requests) == 5


def test_persistent_500_is_unavailable(client: httpx.Client, fake: FakeGitHub) -> None:
    fake.add_repository("acme/api")
    fake.fail(500)
    with pytest.raises(ConnectorUnavailable, match=r"GitHub answered 500: Server Error \(after"):
        github(client, fake)


@pytest.mark.parametrize(
    "repository",
    ["", "acme", "acme/", "/api", "acme/api/extra", "-acme/api", "ac me/api", "acme/..", "a/b c"],
)
def test_bad_repository_is_a_value_error(client: httpx.Client, repository: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        fetch_github_facts(client, token=None, repository=repository, now=NOW)


def test_valid_repository_slugs() -> None:
    assert parse_repository("octo-org/hello.world_2") == ("octo-org", "hello.world_2")


def test_naive_now_is_rejected(client: httpx.Client) -> None:
    naive = datetime(2025, 6, 10, 12, 0)  # noqa: DTZ001 - deliberately naive
    with pytest.raises(ValueError, match="timezone-aware"):
        fetch_github_facts(client, token=None, repository="acme/api", now=naive)
