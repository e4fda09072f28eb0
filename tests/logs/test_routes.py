"""/api/v1/logs: filters, pagination, purge; the seed's events are written by runs."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.clock import FrozenClock
from runhq.logs import service as logs
from runhq.logs.models import StructuredLog
from runhq.logs.schemas import LogLevel, LogSource
from runhq.runtime import Runtime
from tests.conftest import Team, bearer


def _seed(session: Session, team: Team) -> None:
    for i in range(7):
        logs.create_log(session, message=f"info {i}", workspace_id=team.workspace_id)
    logs.create_log(
        session,
        message="boom",
        level=LogLevel.error,
        source=LogSource.executive_run,
        workspace_id=team.workspace_id,
    )
    logs.create_log(
        session,
        message="careful",
        level=LogLevel.warn,
        source=LogSource.autopilot,
        workspace_id=team.workspace_id,
    )
    session.commit()


def test_filter_by_level_and_source(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    _seed(session, team)
    h = bearer(runtime, team.viewer)
    errors = client.get("/api/v1/logs", params={"level": "error"}, headers=h).json()["items"]
    assert [e["message"] for e in errors] == ["boom"]
    auto = client.get("/api/v1/logs", params={"source": "autopilot"}, headers=h).json()["items"]
    assert [e["message"] for e in auto] == ["careful"]
    assert "metadata" in auto[0]


def test_pagination_walks_every_line_once(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    _seed(session, team)
    h = bearer(runtime, team.viewer)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, str | int] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/logs", params=params, headers=h).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 9


def test_bad_filters_are_422(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.viewer)
    for params in (
        {"level": "fatal"},
        {"since": "yesterday"},
        {"run_id": "x"},
        {"limit": 501},
        {"cursor": "%%%"},
    ):
        r = client.get("/api/v1/logs", params=params, headers=h)
        assert r.status_code == 422, params
        assert r.json()["error"]["details"]["field"]


def test_run_lifecycle_writes_the_seed_events(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.owner)
    run = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h).json()
    runtime.engine.execute(__import__("uuid").UUID(run["id"]))
    lines = client.get("/api/v1/logs", params={"run_id": run["id"]}, headers=h).json()["items"]
    by_message = {line["message"]: line for line in lines}
    assert {"run.created", "run.started", "run.completed"} <= set(by_message)
    started = by_message["run.started"]["metadata"]
    assert {"run_type", "platform_key", "model", "user_id", "cost_estimate"} <= set(started)
    completed = by_message["run.completed"]["metadata"]
    assert {"run_type", "model", "duration_ms", "run_id", "cost_estimate"} <= set(completed)
    assert by_message["run.started"]["source"] == "executive-run"


def test_purge_removes_only_old_lines_and_needs_owner(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    with FrozenClock(clock.now() - timedelta(days=31)):
        logs.create_log(session, message="old", workspace_id=team.workspace_id)
    logs.create_log(session, message="new", workspace_id=team.workspace_id)
    session.commit()
    assert client.post("/api/v1/logs/purge", headers=bearer(runtime, team.admin)).status_code == 403
    r = client.post("/api/v1/logs/purge", headers=bearer(runtime, team.owner))
    assert r.status_code == 200
    assert r.json()["deleted"] == 1
    left = set(session.scalars(select(StructuredLog.message)))
    assert "old" not in left
    assert "new" in left
    assert "logs.purged" in left
    assert (
        client.post(
            "/api/v1/logs/purge", params={"older_than_days": 0}, headers=bearer(runtime, team.owner)
        ).status_code
        == 422
    )


def test_purge_job_uses_the_retention(session: Session, team: Team) -> None:
    with FrozenClock(clock.now() - timedelta(days=10)):
        logs.create_log(session, message="ten days", workspace_id=team.workspace_id)
    deleted, _ = logs.purge_logs(session, older_than_days=30)
    assert deleted == 0
    deleted, _ = logs.purge_logs(session, older_than_days=7)
    assert deleted == 1
    assert (
        session.scalar(
            select(func.count(StructuredLog.id)).where(StructuredLog.message == "ten days")
        )
        == 0
    )


def test_owner_purge_only_touches_their_workspace(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    from tests.conftest import make_team

    other = make_team(session)
    with FrozenClock(clock.now() - timedelta(days=40)):
        logs.create_log(session, message="mine", workspace_id=team.workspace_id)
        logs.create_log(session, message="theirs", workspace_id=other.workspace_id)
    session.commit()
    r = client.post("/api/v1/logs/purge", headers=bearer(runtime, team.owner))
    assert r.json()["deleted"] == 1
    left = set(session.scalars(select(StructuredLog.message)))
    assert "theirs" in left
    assert "mine" not in left


def test_naive_since_is_422_not_500(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.viewer)
    r = client.get("/api/v1/logs", params={"since": "2026-11-01T00:00:00"}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "since"
    r = client.get("/api/v1/runs", params={"until": "2026-11-01T00:00:00"}, headers=h)
    assert r.status_code == 422
    ok = client.get("/api/v1/logs", params={"since": "2026-11-01T00:00:00+01:00"}, headers=h)
    assert ok.status_code == 200
