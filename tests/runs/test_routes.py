"""/api/v1/runs: the happy paths and every bad input, with "nothing written" checked."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.costs import service as costs
from runhq.logs.models import StructuredLog
from runhq.runs.models import Run, RunApproval
from runhq.runtime import Runtime
from tests.conftest import Team, bearer


def _counts(session: Session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count(Run.id))) or 0,
        session.scalar(select(func.count(StructuredLog.id))) or 0,
        session.scalar(select(func.count(RunApproval.id))) or 0,
    )


def test_create_run_returns_201_with_the_public_fields(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    r = client.post(
        "/api/v1/runs",
        json={"run_type": "DAILY_EXECUTIVE_BRIEF"},
        headers=bearer(runtime, team.operator),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    for field in (
        "id",
        "run_type",
        "status",
        "platform_key",
        "executive_summary",
        "output",
        "model_used",
        "estimated_cost",
        "actual_cost",
        "tokens_in",
        "tokens_out",
        "duration_ms",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    ):
        assert field in body
    assert body["status"] == "queued"
    assert body["estimated_cost"] == 0.10


def test_gated_run_waits_for_approval(client: TestClient, runtime: Runtime, team: Team) -> None:
    r = client.post(
        "/api/v1/runs",
        json={"run_type": "RELEASE_GATE_CHECK", "platform_key": "app"},
        headers=bearer(runtime, team.operator),
    )
    assert r.status_code == 201
    assert r.json()["status"] == "pending_approval"
    # An action run plans first: queued in its plan phase, approval comes after the plan.
    r = client.post(
        "/api/v1/runs",
        json={"run_type": "DEPLOY_TO_PRODUCTION", "platform_key": "app"},
        headers=bearer(runtime, team.operator),
    )
    assert (r.json()["status"], r.json()["phase"]) == ("queued", "plan")


def test_unknown_run_type_is_400_listing_valid_ones_and_writes_nothing(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    before = _counts(session)
    r = client.post("/api/v1/runs", json={"run_type": "NOPE"}, headers=bearer(runtime, team.owner))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "run_type_unknown"
    assert len(error["details"]["valid_run_types"]) == 29
    assert "DAILY_EXECUTIVE_BRIEF" in error["message"]
    assert _counts(session) == before


def test_malformed_params_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    before = _counts(session)
    h = bearer(runtime, team.owner)
    r = client.post(
        "/api/v1/runs",
        json={"run_type": "REVENUE_FORECAST", "params": {"horizon_months": "twelve"}},
        headers=h,
    )
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert details["field"] == "params.horizon_months"
    # Why, in words a client can translate: the JSON Schema keyword and what it expected.
    assert details["param"] == "horizon_months"
    assert (details["reason"], details["expected"]) == ("type", "integer")
    r = client.post(
        "/api/v1/runs", json={"run_type": "REVENUE_FORECAST", "params": {"bogus": 1}}, headers=h
    )
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert details["field"] == "params.bogus"
    assert details["reason"] == "unknown"
    assert "horizon_months" in details["accepted"]
    r = client.post("/api/v1/runs", json={"run_type": "PRICING_CHANGE", "params": {}}, headers=h)
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert details["field"].startswith("params.")
    assert details["reason"] == "required"
    r = client.post(
        "/api/v1/runs", json={"run_type": "DAILY_EXECUTIVE_BRIEF", "params": [1]}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "params"
    r = client.post("/api/v1/runs", content=b"{not json", headers=h)
    assert r.status_code == 422
    assert _counts(session) == before


def test_duplicate_active_run_is_409_with_the_running_id(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    h = bearer(runtime, team.owner)
    first = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h).json()
    before = _counts(session)
    r = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["running_run_id"] == first["id"]
    assert _counts(session) == before
    # Another platform is another slot.
    r = client.post(
        "/api/v1/runs", json={"run_type": "SEO_AUDIT", "platform_key": "web"}, headers=h
    )
    assert r.status_code == 201


def test_over_budget_is_refused_clearly_and_writes_nothing(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    costs.set_budget(session, team.workspace_id, scope="global", monthly_limit_eur=0.05)
    session.commit()
    before = _counts(session)
    r = client.post(
        "/api/v1/runs",
        json={"run_type": "DAILY_EXECUTIVE_BRIEF"},
        headers=bearer(runtime, team.owner),
    )
    assert r.status_code == 402
    error = r.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "€0.05" in error["message"]
    assert "€0.10" in error["message"]
    assert _counts(session) == before


def test_agent_budget_applies_only_to_that_agent(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.owner)
    assert (
        client.put(
            "/api/v1/costs/budgets", json={"scope": "CFO", "monthly_limit_eur": 0.01}, headers=h
        ).status_code
        == 200
    )
    assert (
        client.post("/api/v1/runs", json={"run_type": "FINANCIAL_REPORT"}, headers=h).status_code
        == 402
    )
    assert client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h).status_code == 201


def test_approve_requires_owner_403_and_nothing_written(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    run = client.post(
        "/api/v1/runs",
        json={"run_type": "RELEASE_GATE_CHECK", "platform_key": "app"},
        headers=bearer(runtime, team.operator),
    ).json()
    before = _counts(session)
    for actor in (team.admin, team.operator, team.viewer):
        r = client.post(f"/api/v1/runs/{run['id']}/approve", headers=bearer(runtime, actor))
        assert r.status_code == 403, actor.role
        assert r.json()["error"]["code"] == "permission_denied"
    assert _counts(session) == before
    r = client.post(
        f"/api/v1/runs/{run['id']}/approve",
        json={"reason": "price reviewed"},
        headers=bearer(runtime, team.owner),
    )
    assert r.status_code == 200
    assert r.json()["status"] == "queued"
    detail = client.get(f"/api/v1/runs/{run['id']}", headers=bearer(runtime, team.owner)).json()
    assert detail["approvals"][0]["reason"] == "price reviewed"
    # Approving twice is a conflict, not a second approval.
    again = client.post(f"/api/v1/runs/{run['id']}/approve", headers=bearer(runtime, team.owner))
    assert again.status_code == 409


def test_reject_needs_a_reason(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.owner)
    run = client.post("/api/v1/runs", json={"run_type": "RELEASE_GATE_CHECK"}, headers=h).json()
    assert client.post(f"/api/v1/runs/{run['id']}/reject", json={}, headers=h).status_code == 422
    r = client.post(f"/api/v1/runs/{run['id']}/reject", json={"reason": "not now"}, headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"


def test_viewer_cannot_start_runs(client: TestClient, runtime: Runtime, team: Team) -> None:
    r = client.post(
        "/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=bearer(runtime, team.viewer)
    )
    assert r.status_code == 403


def test_idempotency_key_returns_the_same_run(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.owner)
    body = {"run_type": "SEO_AUDIT", "idempotency_key": "k-1"}
    first = client.post("/api/v1/runs", json=body, headers=h)
    second = client.post("/api/v1/runs", json=body, headers=h)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    conflict = client.post(
        "/api/v1/runs", json={**body, "params": {"url": "https://example.com"}}, headers=h
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"


def test_cancel_and_retry(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.owner)
    run = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h).json()
    assert client.post(f"/api/v1/runs/{run['id']}/retry", headers=h).status_code == 409
    cancelled = client.post(f"/api/v1/runs/{run['id']}/cancel", headers=h).json()
    assert cancelled["status"] == "cancelled"
    assert client.post(f"/api/v1/runs/{run['id']}/cancel", headers=h).status_code == 409
    retry = client.post(f"/api/v1/runs/{run['id']}/retry", headers=h)
    assert retry.status_code == 201
    assert retry.json()["parent_run_id"] == run["id"]
    assert retry.json()["attempt"] == 2


def test_other_workspace_runs_are_invisible(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    from tests.conftest import make_team

    other = make_team(session)
    run = client.post(
        "/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=bearer(runtime, team.owner)
    ).json()
    h = bearer(runtime, other.owner)
    assert client.get(f"/api/v1/runs/{run['id']}", headers=h).status_code == 404
    assert client.post(f"/api/v1/runs/{run['id']}/cancel", headers=h).status_code == 404
    assert client.get("/api/v1/runs", headers=h).json()["items"] == []


def test_list_runs_filters_and_paginates(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.owner)
    keys = ["SEO_AUDIT", "CODE_REVIEW", "FINANCIAL_REPORT", "ROADMAP_UPDATE", "TECH_WATCH_REPORT"]
    for key in keys:
        assert client.post("/api/v1/runs", json={"run_type": key}, headers=h).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/runs", params=params, headers=h).json()
        seen += [item["run_type"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(keys)
    only = client.get("/api/v1/runs", params={"run_type": "CODE_REVIEW"}, headers=h).json()
    assert [i["run_type"] for i in only["items"]] == ["CODE_REVIEW"]
    assert client.get("/api/v1/runs", params={"run_type": "X"}, headers=h).status_code == 400
    assert client.get("/api/v1/runs", params={"status": "nope"}, headers=h).status_code == 422
    assert client.get("/api/v1/runs", params={"cursor": "!!"}, headers=h).status_code == 422
    assert client.get("/api/v1/runs", params={"limit": 0}, headers=h).status_code == 422


def test_unknown_run_id_is_404_and_bad_id_is_422(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.owner)
    assert client.get(f"/api/v1/runs/{uuid.uuid4()}", headers=h).status_code == 404
    r = client.get("/api/v1/runs/not-a-uuid", headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "run_id"


def test_stuck_running_run_is_overridden(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    from runhq.runs.models import RunStatus
    from runhq.runs.state import transition

    h = bearer(runtime, team.owner)
    first = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h).json()
    run = session.get(Run, uuid.UUID(first["id"]))
    assert run is not None
    transition(
        session, run, RunStatus.running, values={"started_at": clock.now() - timedelta(minutes=16)}
    )
    session.commit()
    r = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h)
    assert r.status_code == 201
    session.refresh(run)
    assert run.status == "failed"
    assert "stuck" in (run.error or "")
    messages = session.scalars(
        select(StructuredLog.message).where(StructuredLog.run_id == run.id)
    ).all()
    assert "autopilot.stuck_run_override" in messages


def test_a_failed_commit_is_an_error_response_not_a_201(
    client: TestClient, runtime: Runtime, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.orm import Session as SASession

    headers = bearer(runtime, team.owner)

    def broken_commit(self: SASession) -> None:
        raise RuntimeError("database went away at commit")

    monkeypatch.setattr(SASession, "commit", broken_commit)
    r = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=headers)
    assert r.status_code == 500
    assert "database went away" not in r.text
    assert r.json()["error"]["code"] == "internal_error"
