"""/api/v1/costs: totals per month, per run type and agent; never NaN or null."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from runhq.clock import FrozenClock
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, bearer


def _history(session: Session, runtime: Runtime, team: Team) -> None:
    at = datetime(2026, 10, 15, 9, tzinfo=UTC)
    for key, cost, status in [
        ("SEO_AUDIT", 0.20, RunStatus.completed),
        ("SEO_AUDIT", 0.10, RunStatus.completed),
        ("FINANCIAL_REPORT", None, RunStatus.failed),
    ]:
        runs.import_run_record(
            session,
            team.workspace_id,
            runtime.registry,
            run_type=key,
            status=status,
            created_at=at,
            requested_via="test",
            actual_cost=cost,
            duration_ms=1000,
        )
    session.commit()


def _numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, float | int) and not isinstance(value, bool) else []


def test_month_report(client: TestClient, runtime: Runtime, team: Team, session: Session) -> None:
    _history(session, runtime, team)
    r = client.get(
        "/api/v1/costs", params={"month": "2026-10"}, headers=bearer(runtime, team.viewer)
    )
    assert r.status_code == 200
    body = r.json()
    assert body["runs"] == 3
    assert body["total_cost"] == 0.3
    seo = next(line for line in body["by_run_type"] if line["key"] == "SEO_AUDIT")
    assert (seo["runs"], seo["total_cost"], seo["average_cost"]) == (2, 0.3, 0.15)
    fin = next(line for line in body["by_run_type"] if line["key"] == "FINANCIAL_REPORT")
    assert fin["total_cost"] == 0.0
    assert fin["average_cost"] == 0.0
    assert all(math.isfinite(n) for n in _numbers(body))
    assert None not in [line.get("average_cost") for line in body["by_run_type"]]


def test_empty_month_is_zeroes_not_null(client: TestClient, runtime: Runtime, team: Team) -> None:
    body = client.get(
        "/api/v1/costs", params={"month": "2020-01"}, headers=bearer(runtime, team.viewer)
    ).json()
    assert (body["total_cost"], body["runs"], body["by_run_type"]) == (0.0, 0, [])


def test_month_boundaries_are_paris_time(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    # 23:30 UTC on 31 Oct is 00:30 on 1 Nov in Paris (CET, UTC+1).
    runs.import_run_record(
        session,
        team.workspace_id,
        runtime.registry,
        run_type="SEO_AUDIT",
        status=RunStatus.completed,
        created_at=datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
        requested_via="test",
        actual_cost=0.5,
    )
    session.commit()
    h = bearer(runtime, team.viewer)
    assert client.get("/api/v1/costs", params={"month": "2026-11"}, headers=h).json()["runs"] == 1
    assert client.get("/api/v1/costs", params={"month": "2026-10"}, headers=h).json()["runs"] == 0


def test_bad_month_and_budget_inputs(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.owner)
    for month in ("2026-13", "11-2026", "x"):
        r = client.get("/api/v1/costs", params={"month": month}, headers=h)
        assert r.status_code == 422
        assert r.json()["error"]["details"]["field"] == "month"
    for body in (
        {"monthly_limit_eur": -1},
        {"scope": "nobody", "monthly_limit_eur": 1},
        {"scope": "XYZ", "monthly_limit_eur": 1},
        {},
    ):
        r = client.put("/api/v1/costs/budgets", json=body, headers=h)
        assert r.status_code == 422, body
    r = client.put(
        "/api/v1/costs/budgets", json={"monthly_limit_eur": 10}, headers=bearer(runtime, team.admin)
    )
    assert r.status_code == 403
    assert client.get("/api/v1/costs/budgets", headers=h).json() == []


def test_budget_status_counts_spent_and_reserved(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.owner)
    with FrozenClock(datetime(2026, 11, 10, 12, tzinfo=UTC)):
        client.put("/api/v1/costs/budgets", json={"monthly_limit_eur": 1.0}, headers=h)
        client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h)
        status = client.get("/api/v1/costs/budgets", headers=h).json()[0]
    assert status["reserved_eur"] == 0.2
    assert status["remaining_eur"] == 0.8
