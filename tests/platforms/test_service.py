"""Health checks, incidents and uptime against a real local endpoint, controlled clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from runhq.clock import FrozenClock
from runhq.logs.models import StructuredLog
from runhq.platforms import service
from runhq.platforms.models import HealthCheck, Incident, Platform
from runhq.runtime import Runtime
from tests.conftest import Team, bearer, counted_statements
from tests.fakes.health_server import FakeHealth

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def health() -> Iterator[FakeHealth]:
    with FakeHealth() as server:
        yield server


def _platform(session: Session, team: Team, url: str) -> Platform:
    return service.create_platform(
        session,
        team.admin,
        key="app",
        name="App",
        health_urls=[url],
        expected_body="ok",
        failure_threshold=3,
    )


def test_incident_opens_after_3_failures_and_closes_on_recovery(
    session: Session, team: Team, health: FakeHealth
) -> None:
    with FrozenClock(T0) as clock, httpx.Client() as client:
        platform = _platform(session, team, health.url)
        outcomes = []
        for status in [200, 200, 500, 500, 500, 500, 200, 200]:
            health.status = status
            outcomes.append(service.check_platform(session, client, platform))
            clock.advance(timedelta(minutes=1))
        session.commit()
    opened, closed = outcomes[4], outcomes[6]
    assert [o is not None for o in outcomes] == [
        False,
        False,
        False,
        False,
        True,
        False,
        True,
        False,
    ]
    assert opened is closed  # the same incident, opened by the 3rd failure, closed by recovery
    assert opened is not None
    assert opened.opened_at == T0 + timedelta(minutes=4)
    assert opened.closed_at == T0 + timedelta(minutes=6)
    assert "HTTP 500" in opened.reason
    assert opened.failures == 4
    events = session.scalars(
        select(StructuredLog.message)
        .where(StructuredLog.message.like("platform.incident_%"))
        .order_by(StructuredLog.created_at)
    ).all()
    assert events == ["platform.incident_opened", "platform.incident_closed"]


def test_uptime_matches_the_stored_checks(session: Session, team: Team, health: FakeHealth) -> None:
    with FrozenClock(T0 - timedelta(days=3)) as clock, httpx.Client() as client:
        platform = _platform(session, team, health.url)
        for i in range(60):  # one check an hour for 60 hours, every 4th one failing
            health.status = 500 if i % 4 == 0 else 200
            service.check_platform(session, client, platform)
            clock.advance(timedelta(hours=1))
        session.commit()
        now = clock.current
        stored = session.execute(
            select(HealthCheck.checked_at, HealthCheck.ok).where(
                HealthCheck.platform_id == platform.id
            )
        ).all()
        for window, delta in service.WINDOWS.items():
            since = now - delta
            expected = [ok for at, ok in stored if at >= since]
            n, ok = service.get_uptime(session, [platform.id], since)[platform.id]
            assert (n, ok) == (len(expected), sum(expected)), window
        avg = service.get_average_uptime(session, team.workspace_id)
    last_day = [ok for at, ok in stored if at >= now - timedelta(hours=24)]
    assert avg == pytest.approx(sum(last_day) / len(last_day))


def test_wrong_body_and_unreachable_count_as_failures(
    session: Session, team: Team, health: FakeHealth
) -> None:
    with httpx.Client() as client:
        platform = _platform(session, team, health.url)
        health.body = "maintenance"
        r = service.probe(client, platform, health.url)
        assert r["ok"] is False
        assert "body does not contain" in r["error"]
        r = service.probe(client, platform, "http://127.0.0.1:9/health")
        assert r["ok"] is False
        assert r["status_code"] is None


def test_due_checks_respect_the_interval(session: Session, team: Team, health: FakeHealth) -> None:
    with FrozenClock(T0) as clock, httpx.Client() as client:
        platform = _platform(session, team, health.url)
        assert [p.key for p in service.list_due_checks(session)] == ["app"]
        service.check_platform(session, client, platform)
        assert service.list_due_checks(session) == []
        clock.advance(timedelta(seconds=platform.check_interval_seconds))
        assert [p.key for p in service.list_due_checks(session)] == ["app"]


def test_platforms_api(
    client: TestClient, runtime: Runtime, team: Team, session: Session, health: FakeHealth
) -> None:
    h = bearer(runtime, team.admin)
    body = {"key": "app", "name": "App", "health_urls": [health.url], "expected_body": "ok"}
    r = client.post("/api/v1/platforms", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "unknown"
    assert client.post("/api/v1/platforms", json=body, headers=h).status_code == 409
    checked = client.post("/api/v1/platforms/app/check", headers=h).json()
    assert checked["status"] == "up"
    assert checked["uptime"][0] == {"window": "24h", "checks": 1, "ok": 1, "uptime": 1.0}
    assert len(client.get("/api/v1/platforms/app/checks", headers=h).json()) == 1
    assert client.get("/api/v1/platforms/app/incidents", headers=h).json() == []
    for bad in (
        {"key": "Bad Key", "name": "x"},
        {"key": "x", "name": "x", "health_urls": ["not a url"]},
        {"key": "x", "name": "x", "failure_threshold": 0},
    ):
        assert client.post("/api/v1/platforms", json=bad, headers=h).status_code == 422
    assert (
        client.post(
            "/api/v1/platforms", json={**body, "key": "y"}, headers=bearer(runtime, team.operator)
        ).status_code
        == 403
    )
    assert session.scalar(select(func.count(Platform.id))) == 1
    assert client.get("/api/v1/platforms/none", headers=h).status_code == 404


def test_platform_facts_reach_the_status_review(
    session: Session, runtime: Runtime, team: Team, health: FakeHealth
) -> None:
    from runhq.runs import service as runs

    with httpx.Client() as client:
        platform = _platform(session, team, health.url)
        health.status = 503
        for _ in range(3):
            service.check_platform(session, client, platform)
    run, _ = runs.create_run(
        session,
        team.operator,
        runtime.registry,
        run_type="PLATFORM_STATUS_REVIEW",
        platform_key="app",
    )
    session.commit()
    runtime.engine.execute(run.id)
    session.refresh(run)
    fact = run.context["facts"]["platforms"] if run.context else {}
    assert fact["status"] == "ok"
    assert "incident ouvert sur app." in fact["summary"]  # in the report language
    assert "incident ouvert sur app." in (run.executive_summary or "")


def test_platform_update_and_check_bad_inputs(
    client: TestClient, runtime: Runtime, team: Team, health: FakeHealth
) -> None:
    h = bearer(runtime, team.admin)
    client.post(
        "/api/v1/platforms",
        json={"key": "app", "name": "App", "health_urls": [health.url]},
        headers=h,
    )
    r = client.patch("/api/v1/platforms/app", json={"name": None}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "name"
    assert (
        client.patch("/api/v1/platforms/app", json={"failure_threshold": 0}, headers=h).status_code
        == 422
    )
    assert (
        client.patch("/api/v1/platforms/app", json={"owner_contact": None}, headers=h).status_code
        == 200
    )
    assert (
        client.post("/api/v1/platforms/app/check", headers=bearer(runtime, team.viewer)).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/platforms/app/check", headers=bearer(runtime, team.operator)
        ).status_code
        == 200
    )


def test_the_deploy_target_is_whole_for_admins_only(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    target = {
        "type": "webhook",
        "url": "https://deploy.example.com/hooks/T0K3N-in-the-path?sig=abc",
        "secret_env": "DEPLOY_SECRET",
    }
    body = {"key": "shop", "name": "Shop", "deploy_target": target}
    created = client.post("/api/v1/platforms", json=body, headers=bearer(runtime, team.admin))
    assert created.status_code == 201, created.text
    for actor in (team.owner, team.admin):
        seen = client.get("/api/v1/platforms/shop", headers=bearer(runtime, actor)).json()
        assert seen["deploy_target"] == target
    for actor in (team.operator, team.viewer):
        for answer in (
            client.get("/api/v1/platforms/shop", headers=bearer(runtime, actor)).json(),
            client.get("/api/v1/platforms", headers=bearer(runtime, actor)).json()[0],
        ):
            assert answer["deploy_target"] == {
                "type": "webhook",
                "url": "https://deploy.example.com/…",
                "secret_env": service.REDACTED,
            }
            assert "T0K3N" not in str(answer)


def _with_incidents(session: Session, team: Team, key: str, opened: list[int]) -> Platform:
    """A platform whose incidents opened ``opened`` hours after T0; the last one is open."""
    platform = service.create_platform(
        session, team.admin, key=key, name=key.title(), health_urls=["http://127.0.0.1:9/"]
    )
    for n, hours in enumerate(opened):
        last = n == len(opened) - 1
        session.add(
            Incident(
                workspace_id=team.workspace_id,
                platform_id=platform.id,
                reason=f"{key} #{n}",
                failures=3,
                opened_at=T0 + timedelta(hours=hours),
                closed_at=None if last else T0 + timedelta(hours=hours, minutes=30),
            )
        )
    session.flush()
    return platform


def test_incidents_of_many_platforms_are_read_at_once(session: Session, team: Team) -> None:
    a = _with_incidents(session, team, "alpha", [1, 5, 3, 7])
    b = _with_incidents(session, team, "beta", [2])
    quiet = service.create_platform(
        session, team.admin, key="quiet", name="Quiet", health_urls=["http://127.0.0.1:9/"]
    )
    ids = [a.id, b.id, quiet.id]
    recent = service.list_recent_incidents(session, ids, per_platform=3)
    assert [i.reason for i in recent[a.id]] == ["alpha #3", "alpha #1", "alpha #2"]
    assert [i.reason for i in recent[b.id]] == ["beta #0"]
    assert recent[quiet.id] == []
    open_ = service.list_open_incidents(session, ids)
    assert {pid: i.reason for pid, i in open_.items()} == {a.id: "alpha #3", b.id: "beta #0"}
    assert service.list_recent_incidents(session, [], per_platform=3) == {}
    assert service.list_open_incidents(session, []) == {}


def test_listing_platforms_costs_the_same_queries_for_one_or_many(
    client: TestClient, session: Session, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    headers = bearer(runtime, team.viewer)
    _with_incidents(session, team, "p0", [1, 2])
    session.commit()
    with counted_statements(db_engine) as one:
        assert len(client.get("/api/v1/platforms", headers=headers).json()) == 1
    for n in range(1, 6):
        _with_incidents(session, team, f"p{n}", [1, 2])
    session.commit()
    with counted_statements(db_engine) as six:
        listed = client.get("/api/v1/platforms", headers=headers).json()
    assert len(listed) == 6
    assert all(p["status"] == "down" for p in listed)
    assert len(six) == len(one)


@pytest.mark.parametrize(
    ("target", "field", "message"),
    [
        ({"kind": "webhook", "url": "https://x.example.com/h"}, "deploy_target.kind", "Extra"),
        ({"type": "webhook", "url": "https://x.example.com/h"}, "deploy_target", "secret_env"),
        ({"type": "webhook", "url": "not a url", "secret_env": "S"}, "deploy_target.url", "URL"),
        (
            {"type": "webhook", "url": "https://x.example.com", "secret_env": "no-dash"},
            "secret_env",
            "pattern",
        ),
        ({"type": "github", "workflow": "d.yml"}, "deploy_target", "token_env"),
        (
            {
                "type": "github",
                "workflow": "d.yml",
                "token_env": "T",
                "url": "https://x.example.com",
            },
            "deploy_target",
            "takes no url",
        ),
        ({"type": "ftp"}, "deploy_target.type", "webhook"),
        ({"url": "https://x.example.com/h", "secret_env": "S"}, "deploy_target", "need a type"),
    ],
)
def test_a_deploy_target_that_cannot_work_is_refused_when_configured(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    target: dict[str, str],
    field: str,
    message: str,
) -> None:
    h = bearer(runtime, team.admin)
    body = {"key": "shop", "name": "Shop", "deploy_target": target}
    r = client.post("/api/v1/platforms", json=body, headers=h)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert field in error["details"]["field"]
    assert message in error["message"]
    assert session.scalar(select(func.count()).select_from(Platform)) == 0
    # The same through PATCH, on a platform that exists: left as it was.
    assert (
        client.post(
            "/api/v1/platforms", json={"key": "shop", "name": "Shop"}, headers=h
        ).status_code
        == 201
    )
    r = client.patch("/api/v1/platforms/shop", json={"deploy_target": target}, headers=h)
    assert r.status_code == 422, r.text
    assert client.get("/api/v1/platforms/shop", headers=h).json()["deploy_target"] == {}


def test_deploy_targets_are_stored_as_given(session: Session, team: Team) -> None:
    github = {"type": "github", "workflow": "deploy.yml", "token_env": "GH_TOKEN", "ref": "main"}
    platform = service.create_platform(
        session, team.admin, key="gh", name="GH", deploy_target=github
    )
    assert platform.deploy_target == github
    rls = {"database_url_env": "PRODUCT_DB"}
    service.update_platform(session, team.admin, "gh", {"deploy_target": rls})
    assert platform.deploy_target == rls
    hook = {"type": "webhook", "url": "http://127.0.0.1:9999", "secret_env": "S"}
    service.update_platform(session, team.admin, "gh", {"deploy_target": hook})
    assert platform.deploy_target["url"] == "http://127.0.0.1:9999"  # as written


def test_old_check_results_are_purged_and_incidents_kept(
    session: Session, team: Team, health: FakeHealth
) -> None:
    with FrozenClock(T0) as frozen, httpx.Client() as client:
        platform = _platform(session, team, health.url)
        health.status = 500
        for _ in range(3):
            service.check_platform(session, client, platform)  # opens an incident
        frozen.advance(timedelta(days=100))
        health.status = 200
        service.check_platform(session, client, platform)
        assert service.purge_checks(session, older_than=timedelta(days=90)) == 3
        assert service.purge_checks(session, older_than=timedelta(days=90)) == 0
    left = session.scalars(select(HealthCheck.checked_at)).all()
    assert left == [T0 + timedelta(days=100)]
    assert service.list_incidents(session, platform) != []
