"""DEPLOY_TO_PRODUCTION end to end: plan → owner approval bound to the plan → one signed
webhook; refusals when the release gate failed or an incident is open; edited plans and
expired approvals cannot act."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from runhq import clock
from runhq.clock import FrozenClock
from runhq.errors import InvalidTransition
from runhq.platforms import service as platforms
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, bearer
from tests.fakes.deploy_receiver import FakeDeployReceiver
from tests.fakes.health_server import FakeHealth

SECRET_ENV = "RUNHQ_TEST_DEPLOY_SECRET"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDeployReceiver]:
    with FakeDeployReceiver(secret="s3cret-webhook-key") as r:
        monkeypatch.setenv(SECRET_ENV, "s3cret-webhook-key")
        yield r


@pytest.fixture
def app_platform(session: Session, team: Team, receiver: FakeDeployReceiver) -> str:
    platforms.create_platform(
        session,
        team.admin,
        key="app",
        name="App",
        deploy_target={"type": "webhook", "url": receiver.url, "secret_env": SECRET_ENV},
    )
    session.commit()
    return "app"


def _gate(runtime: Runtime, session: Session, team: Team) -> Run:
    gate, _ = runs.create_run(
        session, team.operator, runtime.registry, run_type="RELEASE_GATE_CHECK", platform_key="app"
    )
    runs.approve_run(session, team.owner, gate.id, reason="gate")
    session.commit()
    runtime.engine.execute(gate.id)
    session.refresh(gate)
    return gate


def _plan(runtime: Runtime, session: Session, team: Team) -> Run:
    run, _ = runs.create_run(
        session,
        team.operator,
        runtime.registry,
        run_type="DEPLOY_TO_PRODUCTION",
        platform_key="app",
        params={"ref": "v1.4.0"},
    )
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    return run


def test_deploy_end_to_end_sends_one_signed_webhook(
    client: TestClient,
    runtime: Runtime,
    session: Session,
    team: Team,
    receiver: FakeDeployReceiver,
    app_platform: str,
) -> None:
    gate = _gate(runtime, session, team)
    assert gate.output is not None
    assert gate.output["verdict"] == "pass"
    run = _plan(runtime, session, team)
    assert run.plan is not None
    assert run.plan["ref"] == "v1.4.0"
    assert run.plan["target"]["url"] == receiver.url
    assert "secret" not in str(run.plan)
    assert receiver.deliveries == []  # nothing happened before approval

    h = bearer(runtime, team.owner)
    r = client.post(
        f"/api/v1/runs/{run.id}/approve",
        json={"reason": "release 1.4", "plan_hash": run.plan_hash},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert runtime.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.action_result is not None
    assert run.action_result["ok"] is True
    assert len(receiver.deliveries) == 1
    delivery = receiver.deliveries[0]
    assert delivery.valid_signature
    assert delivery.json["run_id"] == str(run.id)
    assert delivery.json["plan_hash"] == run.plan_hash

    # A second approval, a retry or a redelivered task cannot deploy again.
    assert client.post(f"/api/v1/runs/{run.id}/approve", headers=h).status_code == 409
    assert client.post(f"/api/v1/runs/{run.id}/retry", headers=h).status_code == 409
    assert runtime.engine.execute(run.id) is None
    assert len(receiver.deliveries) == 1


def _fail(
    session: Session, runtime: Runtime, team: Team, run_type: str, platform: str | None
) -> None:
    """A run of ``run_type`` that failed just now."""
    from runhq.runs.state import transition

    run, _ = runs.create_run(
        session, team.operator, runtime.registry, run_type=run_type, platform_key=platform
    )
    if run.status == RunStatus.pending_approval:
        runs.approve_run(session, team.owner, run.id, reason="test")
    transition(session, run, RunStatus.running)
    transition(session, run, RunStatus.failed, values={"error": "boom"})
    session.commit()


def test_failed_release_gate_refuses_to_act(
    runtime: Runtime,
    session: Session,
    team: Team,
    receiver: FakeDeployReceiver,
    app_platform: str,
) -> None:
    for _ in range(2):  # the same run type failing again within a day: recurring
        _fail(session, runtime, team, "SEO_AUDIT", None)
    gate = _gate(runtime, session, team)
    assert gate.output is not None
    assert gate.output["verdict"] == "fail"
    assert gate.output["verdict_by"] == "rule"
    assert "SEO_AUDIT a échoué 2 fois en 24 h" in gate.output["verdict_reasons"]
    run = _plan(runtime, session, team)
    runs.approve_run(session, team.owner, run.id, reason="go")
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "did not pass" in (run.error or "")
    assert "SEO_AUDIT a échoué 2 fois" in (run.error or "")
    assert receiver.deliveries == []


def test_the_gate_rule_ignores_blips_other_platforms_and_refused_deploys(
    runtime: Runtime, session: Session, team: Team, app_platform: str
) -> None:
    """One failure is a blip; another platform's failures are not this one's; and refused
    deployments (or failed gates) must not block the gate that would let the next one pass."""
    platforms.create_platform(session, team.admin, key="blog", name="Blog")
    session.commit()
    _fail(session, runtime, team, "SEO_AUDIT", None)
    for _ in range(3):
        _fail(session, runtime, team, "SEO_AUDIT", "blog")
    for _ in range(2):
        _fail(session, runtime, team, "DEPLOY_TO_PRODUCTION", "app")
        _fail(session, runtime, team, "RELEASE_GATE_CHECK", "app")
    gate = _gate(runtime, session, team)
    assert gate.output is not None
    assert gate.output["verdict"] == "pass", gate.output["verdict_reasons"]
    assert "CI non vérifiée\u00a0: GitHub n'est pas configuré" in gate.output["verdict_reasons"]
    # The facts count every failure exactly (the rule reads the recurring ones).
    assert gate.context is not None
    failures = gate.context["facts"]["failures"]["data"]
    assert failures["failed_24h"] == 8
    assert {(r["run_type"], r["platform_key"]) for r in failures["recurring_24h"]} == {
        ("SEO_AUDIT", "blog"),
        ("DEPLOY_TO_PRODUCTION", "app"),
        ("RELEASE_GATE_CHECK", "app"),
    }
    # The same failures on the gated platform do block it.
    for _ in range(2):
        _fail(session, runtime, team, "VULNERABILITY_SCAN", "app")
    gate = _gate(runtime, session, team)
    assert gate.output is not None
    assert gate.output["verdict"] == "fail"
    assert gate.output["verdict_reasons"][0] == (
        "VULNERABILITY_SCAN a échoué 2 fois en 24 h sur app"  # in the report language
    )


def test_no_recent_gate_refuses_to_act(
    runtime: Runtime, session: Session, team: Team, receiver: FakeDeployReceiver, app_platform: str
) -> None:
    run = _plan(runtime, session, team)
    runs.approve_run(session, team.owner, run.id, reason="go")
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "no RELEASE_GATE_CHECK" in (run.error or "")
    assert receiver.deliveries == []


def test_open_incident_refuses_to_act(
    runtime: Runtime, session: Session, team: Team, receiver: FakeDeployReceiver, app_platform: str
) -> None:
    _gate(runtime, session, team)
    run = _plan(runtime, session, team)
    runs.approve_run(session, team.owner, run.id, reason="go")
    session.commit()
    platform = platforms.get_platform(session, team.workspace_id, "app")
    with FakeHealth() as health, httpx.Client() as client:
        platform.health_urls = [health.url]
        health.status = 503
        for _ in range(platform.failure_threshold):
            platforms.check_platform(session, client, platform)
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "open incident" in (run.error or "")
    assert receiver.deliveries == []


def test_a_plan_edited_after_approval_needs_a_new_approval(
    client: TestClient,
    runtime: Runtime,
    session: Session,
    team: Team,
    receiver: FakeDeployReceiver,
    app_platform: str,
) -> None:
    _gate(runtime, session, team)
    run = _plan(runtime, session, team)
    old_hash = run.plan_hash
    runs.approve_run(session, team.owner, run.id, reason="v1.4")
    session.commit()
    assert run.plan is not None
    edited = {**run.plan, "ref": "v1.5.0-rc1"}
    r = client.put(
        f"/api/v1/runs/{run.id}/plan", json={"plan": edited}, headers=bearer(runtime, team.admin)
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["phase"]) == ("pending_approval", "review")
    assert r.json()["plan_hash"] != old_hash
    assert runtime.engine.execute(run.id) is None  # back with the owner: cannot act
    assert receiver.deliveries == []
    # Approving with the hash of the plan the owner saw before the edit is refused.
    session.refresh(run)
    with pytest.raises(InvalidTransition, match="plan changed"):
        runs.approve_run(session, team.owner, run.id, reason="x", plan_hash=old_hash)
    runs.approve_run(session, team.owner, run.id, reason="v1.5 rc", plan_hash=run.plan_hash)
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.completed
    assert len(receiver.deliveries) == 1
    assert receiver.deliveries[0].json["ref"] == "v1.5.0-rc1"  # the approved plan, not params


def test_a_plan_edit_cannot_change_the_kind_of_action(
    client: TestClient, runtime: Runtime, session: Session, team: Team, app_platform: str
) -> None:
    run = _plan(runtime, session, team)
    assert run.plan is not None
    r = client.put(
        f"/api/v1/runs/{run.id}/plan",
        json={"plan": {**run.plan, "action": "email"}},
        headers=bearer(runtime, team.admin),
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "plan.action"


def test_an_expired_approval_cannot_act(
    runtime: Runtime, session: Session, team: Team, receiver: FakeDeployReceiver, app_platform: str
) -> None:
    _gate(runtime, session, team)
    run = _plan(runtime, session, team)
    runs.approve_run(session, team.owner, run.id, reason="go", ttl=timedelta(hours=1))
    session.commit()
    with FrozenClock(clock.now() + timedelta(hours=2)):
        assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "no valid approval" in (run.error or "")
    assert receiver.deliveries == []


def test_plan_edit_bad_inputs(
    client: TestClient, runtime: Runtime, session: Session, team: Team, app_platform: str
) -> None:
    run = _plan(runtime, session, team)
    url = f"/api/v1/runs/{run.id}/plan"
    assert (
        client.put(url, json={"plan": {}}, headers=bearer(runtime, team.operator)).status_code
        == 403
    )
    assert (
        client.put(url, json={"plan": "x"}, headers=bearer(runtime, team.admin)).status_code == 422
    )
    seo, _ = runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")
    session.commit()
    r = client.put(
        f"/api/v1/runs/{seo.id}/plan", json={"plan": {}}, headers=bearer(runtime, team.admin)
    )
    assert r.status_code == 409


def test_webhook_failure_is_recorded_and_never_resent(
    runtime: Runtime,
    session: Session,
    team: Team,
    receiver: FakeDeployReceiver,
    app_platform: str,
) -> None:
    _gate(runtime, session, team)
    run = _plan(runtime, session, team)
    runs.approve_run(session, team.owner, run.id, reason="go")
    session.commit()
    receiver.fail(502)
    assert runtime.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert run.action_result is not None
    assert run.action_result["retryable"] is True
    assert "502" in (run.error or "")
    assert run.action_started_at is not None


def test_deploy_through_github_workflow_dispatch(
    runtime: Runtime, session: Session, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.github_actions_server import FakeGitHubActions

    with FakeGitHubActions() as github:
        github.add_workflow(
            "acme/app", "deploy.yml", inputs={"runhq_run_id": False}, refs=("main", "v1.4.0")
        )
        monkeypatch.setenv("RUNHQ_TEST_GITHUB_TOKEN", github.token)
        platforms.create_platform(
            session,
            team.admin,
            key="app",
            name="App",
            repository="acme/app",
            deploy_target={
                "type": "github",
                "workflow": "deploy.yml",
                "token_env": "RUNHQ_TEST_GITHUB_TOKEN",
                "api_url": github.base_url,
            },
        )
        session.commit()
        _gate(runtime, session, team)
        run = _plan(runtime, session, team)
        runs.approve_run(session, team.owner, run.id, reason="ship")
        session.commit()
        assert runtime.engine.execute(run.id) == RunStatus.completed
        assert len(github.dispatches) == 1
        dispatch = github.dispatches[0]
        assert dispatch.ref == "v1.4.0"
        assert dispatch.inputs == {"runhq_run_id": str(run.id)}
        assert runtime.engine.execute(run.id) is None
        assert len(github.dispatches) == 1
