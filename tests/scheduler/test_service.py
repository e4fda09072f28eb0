"""Schedules, due firings and the leader lease, with a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runhq.clock import FrozenClock
from runhq.errors import LeaseLost
from runhq.runs.models import Run
from runhq.runtime import Runtime
from runhq.scheduler import service
from runhq.scheduler.models import Schedule
from runhq.scheduler.tasks import Scheduler, TickReport
from tests.conftest import Team, bearer


def _tick(session: Session, runtime: Runtime) -> list[service.Firing]:
    fired = service.fire_due_schedules(
        session,
        runtime.registry,
        stuck_after=runtime.stuck_after,
        tz="Europe/Paris",
        notify=None,
    )
    session.commit()
    return fired


def _finish_all(session: Session) -> None:
    """Mark every active run done so the anti-double-run slot is free for the next day."""
    from runhq.runs.models import RunStatus
    from runhq.runs.state import transition

    for run in session.scalars(select(Run).where(Run.status == "queued")).all():
        transition(session, run, RunStatus.cancelled)
    session.commit()


@pytest.mark.parametrize(
    ("day", "expected_utc"),
    [
        # 02:30 does not exist on 29 March 2026 in Paris: shifted to 03:00 CEST = 01:00 UTC.
        (datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # 02:30 happens twice on 25 October 2026: fires once, at the first (CEST) one.
        (datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_daily_0230_fires_exactly_once_on_dst_days(
    session: Session, runtime: Runtime, team: Team, day: datetime, expected_utc: datetime
) -> None:
    start = day - timedelta(days=1, hours=1)
    with FrozenClock(start) as clock:
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="night",
            run_type="SEO_AUDIT",
            cron="30 2 * * *",
        )
        session.commit()
        firings: list[datetime] = []
        # Tick every 5 minutes for three days across the transition.
        for _ in range(3 * 24 * 12):
            clock.advance(timedelta(minutes=5))
            for f in _tick(session, runtime):
                assert f.run_id is not None, f.skipped
                firings.append(f.at)
            _finish_all(session)
    on_the_day = [
        f
        for f in firings
        if expected_utc - timedelta(hours=12) < f < expected_utc + timedelta(hours=12)
    ]
    assert on_the_day == [expected_utc]
    assert len(firings) == 3
    assert len(set(firings)) == 3
    count = session.scalar(select(func.count(Run.id)).where(Run.workspace_id == team.workspace_id))
    assert count == 3


def test_missed_firings_fire_once_and_never_twice(
    session: Session, runtime: Runtime, team: Team
) -> None:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    with FrozenClock(t0) as clock:
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="hourly",
            run_type="SEO_AUDIT",
            cron="0 * * * *",
            timezone="UTC",
        )
        session.commit()
        clock.advance(timedelta(hours=5, minutes=10))  # the scheduler was down for 5 hours
        first = _tick(session, runtime)
        second = _tick(session, runtime)  # a second scheduler (or tick) finds nothing
    assert [f.at for f in first] == [datetime(2026, 11, 2, 13, 0, tzinfo=UTC)]
    assert second == []


def test_a_busy_slot_is_journalled_as_skip_duplicate(
    session: Session, runtime: Runtime, team: Team
) -> None:
    from runhq.logs.models import StructuredLog

    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    with FrozenClock(t0) as clock:
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="q",
            run_type="SEO_AUDIT",
            cron="*/10 * * * *",
            timezone="UTC",
        )
        session.commit()
        clock.advance(timedelta(minutes=11))
        assert _tick(session, runtime)[0].run_id is not None
        clock.advance(timedelta(minutes=10))
        skipped = _tick(session, runtime)
    assert skipped[0].run_id is None
    assert "already queued" in (skipped[0].skipped or "")
    skip = session.scalars(
        select(StructuredLog).where(StructuredLog.message == "autopilot.skip_duplicate")
    ).one()
    assert {"job_key", "run_type", "running_minutes"} <= set(skip.meta)


def test_lease_has_one_holder_and_expires(session: Session) -> None:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    ttl = timedelta(seconds=30)
    with FrozenClock(t0) as clock:
        a = service.acquire_lease(session, name="test", holder="a", ttl=ttl)
        b = service.acquire_lease(session, name="test", holder="b", ttl=ttl)
        assert (a, b) == (1, None)
        clock.advance(timedelta(seconds=20))
        assert service.acquire_lease(session, name="test", holder="a", ttl=ttl) == 1  # renew
        clock.advance(timedelta(seconds=29))
        assert service.acquire_lease(session, name="test", holder="b", ttl=ttl) is None
        clock.advance(timedelta(seconds=2))  # a missed its renewal: b takes over
        assert service.acquire_lease(session, name="test", holder="b", ttl=ttl) == 2
        assert service.acquire_lease(session, name="test", holder="a", ttl=ttl) is None
        service.release_lease(session, name="test", holder="b")
        assert service.acquire_lease(session, name="test", holder="a", ttl=ttl) == 3


def test_schedules_api(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.admin)
    body = {"job_key": "daily-brief", "run_type": "DAILY_EXECUTIVE_BRIEF", "cron": "30 7 * * 1-5"}
    r = client.post("/api/v1/schedules", json=body, headers=h)
    assert r.status_code == 201, r.text
    nxt = r.json()["next_firings"]
    assert len(nxt) == 5
    assert all(datetime.fromisoformat(f).astimezone(UTC).minute == 30 for f in nxt)
    assert client.post("/api/v1/schedules", json=body, headers=h).status_code == 409
    listed = client.get("/api/v1/schedules", headers=bearer(runtime, team.viewer)).json()
    assert [s["job_key"] for s in listed] == ["daily-brief"]
    r = client.patch("/api/v1/schedules/daily-brief", json={"enabled": False}, headers=h)
    assert r.json()["enabled"] is False
    assert client.delete("/api/v1/schedules/daily-brief", headers=h).status_code == 204
    assert client.get("/api/v1/schedules/daily-brief", headers=h).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"cron": "61 * * * *"}, 422, "cron"),
        ({"cron": "* * * * * *"}, 422, "cron"),
        ({"timezone": "Mars/Olympus"}, 422, "timezone"),
        ({"run_type": "NOPE"}, 400, None),
        ({"params": {"bogus": 1}}, 422, "params.bogus"),
        ({"job_key": "Bad Key"}, 422, "job_key"),
    ],
)
def test_schedule_bad_inputs_write_nothing(
    client: TestClient,
    runtime: Runtime,
    team: Team,
    session: Session,
    body: dict[str, object],
    status: int,
    field: str | None,
) -> None:
    base = {"job_key": "j", "run_type": "SEO_AUDIT", "cron": "0 8 * * *"}
    r = client.post("/api/v1/schedules", json={**base, **body}, headers=bearer(runtime, team.admin))
    assert r.status_code == status, r.text
    if field:
        assert r.json()["error"]["details"]["field"] == field
    assert session.scalar(select(func.count(Schedule.id))) == 0


def test_operators_cannot_change_schedules(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    body = {"job_key": "j", "run_type": "SEO_AUDIT", "cron": "0 8 * * *"}
    r = client.post("/api/v1/schedules", json=body, headers=bearer(runtime, team.operator))
    assert r.status_code == 403


def test_enabling_an_enabled_schedule_keeps_its_missed_firing(
    session: Session, runtime: Runtime, team: Team
) -> None:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    with FrozenClock(t0) as clock:
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="h",
            run_type="SEO_AUDIT",
            cron="0 * * * *",
            timezone="UTC",
        )
        clock.advance(timedelta(minutes=70))
        service.update_schedule(
            session, team.admin, runtime.registry, "h", {"enabled": True, "cron": "0 * * * *"}
        )
        fired = _tick(session, runtime)
    assert [f.at for f in fired] == [datetime(2026, 11, 2, 9, 0, tzinfo=UTC)]


def test_the_fence_refuses_a_stale_token_holder_or_lease(session: Session) -> None:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    ttl = timedelta(seconds=30)
    with FrozenClock(t0) as clock:
        token = service.acquire_lease(session, name="test", holder="a", ttl=ttl)
        assert token == 1
        service.check_lease(session, name="test", holder="a", token=1)
        for holder, stale in (("a", 2), ("b", 1)):
            with pytest.raises(LeaseLost):
                service.check_lease(session, name="test", holder=holder, token=stale)
        clock.advance(ttl)  # expired, even before anyone takes it over
        with pytest.raises(LeaseLost):
            service.check_lease(session, name="test", holder="a", token=1)
        with pytest.raises(LeaseLost):
            service.check_lease(session, name="never-taken", holder="a", token=1)


def test_a_replaced_leader_cannot_fire_schedules(
    session: Session, runtime: Runtime, team: Team
) -> None:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    a, b = Scheduler(runtime, holder="a"), Scheduler(runtime, holder="b")
    with FrozenClock(t0) as clock:
        assert a.tick().token == 1
        # a stalls (a long pause) past its lease; b takes over.
        clock.advance(timedelta(seconds=runtime.settings.scheduler_lease_seconds + 1))
        assert b.tick().token == 2
        with FrozenClock(t0 - timedelta(hours=1)):  # created an hour ago: due now
            service.create_schedule(
                session,
                team.admin,
                runtime.registry,
                job_key="hourly-seo",
                run_type="SEO_AUDIT",
                cron="0 * * * *",
                timezone="UTC",
            )
        session.commit()
        # a resumes the tick it had started, with the token it had: refused, nothing fired.
        report = TickReport(leader=True, token=1)
        a._step(report, "schedules", a._fire_schedules)
        assert report.errors == ["schedules: lease lost"]
        assert report.fired == 0
        assert session.scalar(select(func.count(Run.id))) == 0
        assert b.tick().fired == 1  # the leader fires it, once
    assert session.scalar(select(func.count(Run.id))) == 1
