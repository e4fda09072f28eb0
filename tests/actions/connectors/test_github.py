"""GitHub workflow_dispatch against a local fake of the documented endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runhq.actions.connectors.base import ActionFailed, ActionResult
from runhq.actions.connectors.github import dispatch_workflow
from tests.fakes.github_actions_server import FakeGitHubActions

REPO = "acme/storefront"


@pytest.fixture
def github() -> Iterator[FakeGitHubActions]:
    with FakeGitHubActions() as fake:
        fake.add_workflow(
            REPO,
            "deploy.yml",
            inputs={"version": True, "environment": False},
            refs=["main", "v1.4.2"],
        )
        fake.add_workflow(REPO, "ci.yml", dispatchable=False)
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


def dispatch(client: httpx.Client, github: FakeGitHubActions, **overrides: Any) -> ActionResult:
    arguments: dict[str, Any] = {
        "api_url": github.base_url,
        "token": github.token,
        "repository": REPO,
        "workflow": "deploy.yml",
        "ref": "main",
        "inputs": {"version": "1.4.2"},
    }
    arguments.update(overrides)
    return dispatch_workflow(client, **arguments)


def test_dispatch_returns_the_run_when_github_gives_its_details(
    github: FakeGitHubActions, client: httpx.Client
) -> None:
    result = dispatch(client, github, inputs={"version": "1.4.2", "environment": "prod"})

    assert result.ok
    assert len(github.dispatches) == 1
    sent = github.dispatches[0]
    assert (sent.repository, sent.workflow, sent.ref) == (REPO, "deploy.yml", "main")
    assert sent.inputs == {"version": "1.4.2", "environment": "prod"}
    assert result.details["status_code"] == 200
    assert result.details["run_id"] == sent.run_id
    assert result.details["html_url"].endswith(f"/actions/runs/{sent.run_id}")
    assert str(sent.run_id) in result.summary

    request = github.requests[0]
    assert request.path == f"/repos/{REPO}/actions/workflows/deploy.yml/dispatches"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.headers["authorization"] == f"Bearer {github.token}"
    assert request.json["return_run_details"] is True


def test_dispatch_accepts_204_without_run_details(
    github: FakeGitHubActions, client: httpx.Client
) -> None:
    result = dispatch(client, github, return_run_details=False)
    assert result.ok
    assert result.details["status_code"] == 204
    assert "run_id" not in result.details
    assert "return_run_details" not in github.requests[0].json
    assert len(github.dispatches) == 1


def test_a_server_without_return_run_details_gets_one_plain_dispatch(
    client: httpx.Client,
) -> None:
    with FakeGitHubActions(legacy=True) as github:
        github.add_workflow(REPO, "deploy.yml", inputs={"version": True})
        result = dispatch(client, github)
    assert result.ok
    assert result.details["status_code"] == 204
    assert [r.json.get("return_run_details") for r in github.requests] == [True, None]
    assert len(github.dispatches) == 1


def test_the_workflow_can_be_named_by_its_numeric_id(
    github: FakeGitHubActions, client: httpx.Client
) -> None:
    workflow = github.add_workflow("acme/api", "release.yml")
    result = dispatch(client, github, repository="acme/api", workflow=str(workflow.id), inputs={})
    assert result.ok
    assert github.dispatches[0].workflow == "release.yml"


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"workflow": "nope.yml"}, 404, "Not Found"),
        ({"repository": "acme/unknown"}, 404, "Not Found"),
        ({"ref": "feature/missing"}, 422, "No ref found for: feature/missing"),
        ({"inputs": {}}, 422, "Required input 'version' not provided"),
        ({"inputs": {"version": "1", "colour": "red"}}, 422, "Unexpected inputs provided"),
        ({"workflow": "ci.yml", "inputs": {}}, 422, "does not have 'workflow_dispatch'"),
    ],
)
def test_what_github_refuses_is_not_retryable_and_quotes_its_message(
    github: FakeGitHubActions,
    client: httpx.Client,
    overrides: dict[str, Any],
    status: int,
    message: str,
) -> None:
    with pytest.raises(ActionFailed) as caught:
        dispatch(client, github, **overrides)
    assert caught.value.retryable is False
    assert caught.value.status_code == status
    assert message in caught.value.reason
    assert github.token not in caught.value.reason
    assert github.dispatches == []


def test_bad_credentials_are_not_retryable_and_the_token_never_leaks(
    github: FakeGitHubActions, client: httpx.Client
) -> None:
    wrong = "ghp_wrongTokenWrongTokenWrongToken0000"
    with pytest.raises(ActionFailed) as caught:
        dispatch(client, github, token=wrong)
    assert caught.value.retryable is False
    assert caught.value.status_code == 401
    assert "Bad credentials" in caught.value.reason
    assert wrong not in caught.value.reason


def test_a_token_without_actions_write_is_refused(
    github: FakeGitHubActions, client: httpx.Client
) -> None:
    github.read_only_tokens.add("ghp_readOnlyToken000000000000000000")
    with pytest.raises(ActionFailed) as caught:
        dispatch(client, github, token="ghp_readOnlyToken000000000000000000")
    assert caught.value.status_code == 403
    assert caught.value.retryable is False
    assert "Resource not accessible" in caught.value.reason


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable_and_not_retried_here(
    github: FakeGitHubActions, client: httpx.Client, status: int
) -> None:
    github.fail(status, times=1)
    with pytest.raises(ActionFailed) as caught:
        dispatch(client, github)
    assert caught.value.retryable is True
    assert caught.value.status_code == status
    assert len(github.requests) == 1


def test_rate_limits_are_retryable(github: FakeGitHubActions, client: httpx.Client) -> None:
    github.fail(
        403,
        {"message": "API rate limit exceeded for user ID 1."},
        times=1,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1760000000"},
    )
    with pytest.raises(ActionFailed) as caught:
        dispatch(client, github)
    assert caught.value.retryable is True
    assert "rate limit" in caught.value.reason


def test_arguments_are_checked_before_any_request(client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        dispatch_workflow(
            client, token="t0ken", repository="acme", workflow="d.yml", ref="main", inputs={}
        )
    with pytest.raises(ValueError, match="token"):
        dispatch_workflow(
            client, token="", repository="acme/api", workflow="d.yml", ref="main", inputs={}
        )
