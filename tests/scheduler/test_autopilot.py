"""The autopilot: the model only proposes; hard checks decide; every cycle is journalled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, sessionmaker

from runhq.clock import FrozenClock
from runhq.costs import service as costs
from runhq.logs.models import StructuredLog
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from runhq.scheduler import autopilot, service
from tests.conftest import Team, bearer, make_runtime, make_settings
from tests.fakes.openai_server import FakeOpenAI

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # 09:00 in Paris


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-flash")) as server:
        yield server


@pytest.fixture
def online(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    db_engine: Engine,
    fake: FakeOpenAI,
) -> Runtime:
    settings = make_settings(
        tmp_path, database_url, llm_base_url=fake.base_url, llm_api_key=fake.api_key
    )
    return make_runtime(settings, sessions, db_engine)


def _setup(session: Session, runtime: Runtime, team: Team) -> None:
    for job_key, run_type, params in [
        ("brief", "DAILY_EXECUTIVE_BRIEF", {}),
        ("deploy", "DEPLOY_TO_PRODUCTION", {}),
        ("seo", "SEO_AUDIT", {}),
        ("rivals", "COMPETITIVE_ANALYSIS", {}),
    ]:
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key=job_key,
            run_type=run_type,
            cron="0 8 * * *",
            params=params,
        )
    runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")  # busy
    costs.set_budget(session, team.workspace_id, scope="CSO", monthly_limit_eur=0.01)
    autopilot.set_autopilot(
        session, team.admin, enabled=True, interval_minutes=5, default_interval=5
    )
    session.commit()


def _cycle(session: Session, runtime: Runtime, team: Team) -> StructuredLog:
    entry = autopilot.run_cycle(
        session,
        runtime.registry,
        runtime.gateway,
        team.workspace_id,
        stuck_after=runtime.stuck_after,
        tz="Europe/Paris",
        default_interval=5,
        notify=None,
    )
    session.commit()
    assert entry is not None
    return entry


def test_model_proposals_pass_every_hard_check(
    session: Session, online: Runtime, team: Team, fake: FakeOpenAI
) -> None:
    with FrozenClock(T0):
        _setup(session, online, team)
        fake.enqueue_content(
            json.dumps(
                {
                    "jobs_to_run": ["ghost", "deploy", "seo", "rivals", "brief"],
                    "reasoning": "Morning: brief, deploy, audits.",
                    "next_check_in_minutes": 15,
                }
            )
        )
        entry = _cycle(session, online, team)
    meta = entry.meta
    assert meta["mode"] == "model"
    assert meta["jobs_to_run"] == ["ghost", "deploy", "seo", "rivals", "brief"]
    reasons = {r["job_key"]: r["reason"] for r in meta["rejected"]}
    assert "unknown job" in reasons["ghost"]
    assert "already queued" in reasons["seo"]
    assert "budget" in reasons["rivals"]
    assert set(meta["accepted"]) == {"deploy", "brief"}
    assert meta["awaiting_approval"] == ["deploy"]
    assert meta["paris_hour"] == 9
    assert meta["next_check_in_minutes"] == 15
    assert meta["snapshot"]["schedules"]
    created = {
        r.run_type: r.status
        for r in session.scalars(select(Run).where(Run.requested_via == "autopilot"))
    }
    # The critical job only plans: it then waits for an owner; the model cannot approve.
    assert created == {
        "DEPLOY_TO_PRODUCTION": RunStatus.queued,
        "DAILY_EXECUTIVE_BRIEF": RunStatus.queued,
    }
    deploy = session.scalars(select(Run).where(Run.run_type == "DEPLOY_TO_PRODUCTION")).one()
    assert deploy.phase == "plan"
    prompt = fake.chat_requests[-1].body
    assert prompt is not None
    assert "brief" in prompt["messages"][1]["content"]


def test_malformed_model_answer_runs_nothing_and_says_why(
    session: Session, online: Runtime, team: Team, fake: FakeOpenAI
) -> None:
    with FrozenClock(T0):
        _setup(session, online, team)
        fake.enqueue_content("{not json")
        fake.enqueue_content('{"jobs_to_run": "brief"}')
        before = session.scalars(select(Run.id)).all()
        entry = _cycle(session, online, team)
    assert entry.meta["accepted"] == []
    assert "unusable" in entry.meta["reasoning"]
    assert entry.meta["error"]
    assert session.scalars(select(Run.id)).all() == before


def test_deterministic_policy_runs_due_jobs(session: Session, runtime: Runtime, team: Team) -> None:
    with FrozenClock(T0 - timedelta(hours=13)) as clock:  # 20:00 Paris the evening before
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="brief",
            run_type="DAILY_EXECUTIVE_BRIEF",
            cron="0 9 * * *",
        )
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="later",
            run_type="SEO_AUDIT",
            cron="0 18 * * *",
        )
        autopilot.set_autopilot(
            session, team.admin, enabled=True, interval_minutes=5, default_interval=5
        )
        session.commit()
        clock.advance(timedelta(hours=13, minutes=1))  # 09:01 Paris: brief is due, later not
        entry = _cycle(session, runtime, team)
        again = _cycle(session, runtime, team)
    assert entry.meta["mode"] == "deterministic"
    assert entry.meta["accepted"] == ["brief"]
    assert again.meta["accepted"] == []  # ran since: not due any more


def test_scheduler_leaves_autopilot_workspaces_to_the_autopilot(
    session: Session, runtime: Runtime, team: Team
) -> None:
    with FrozenClock(T0) as clock:
        service.create_schedule(
            session,
            team.admin,
            runtime.registry,
            job_key="brief",
            run_type="DAILY_EXECUTIVE_BRIEF",
            cron="*/5 * * * *",
        )
        autopilot.set_autopilot(
            session, team.admin, enabled=True, interval_minutes=5, default_interval=5
        )
        session.commit()
        clock.advance(timedelta(minutes=6))
        fired = service.fire_due_schedules(
            session,
            runtime.registry,
            stuck_after=runtime.stuck_after,
            tz="Europe/Paris",
            notify=None,
        )
    assert fired == []


def test_autopilot_api_and_journal(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    h = bearer(runtime, team.admin)
    assert client.get("/api/v1/autopilot", headers=h).json()["enabled"] is False
    assert (
        client.put(
            "/api/v1/autopilot", json={"enabled": True, "interval_minutes": 0}, headers=h
        ).status_code
        == 422
    )
    assert (
        client.put(
            "/api/v1/autopilot", json={"enabled": True}, headers=bearer(runtime, team.operator)
        ).status_code
        == 403
    )
    on = client.put(
        "/api/v1/autopilot", json={"enabled": True, "interval_minutes": 10}, headers=h
    ).json()
    assert (on["enabled"], on["interval_minutes"], on["mode"]) == (True, 10, "deterministic")
    _cycle(session, runtime, team)
    page = client.get("/api/v1/autopilot/decisions", headers=h).json()
    assert page["items"][0]["mode"] == "deterministic"
    assert page["items"][0]["snapshot"] is None
    full = client.get("/api/v1/autopilot/decisions", params={"snapshot": True}, headers=h)
    assert full.json()["items"][0]["snapshot"]["paris_hour"] >= 0


def test_the_scheduler_runs_autopilot_cycles_outside_the_model_call(
    session: Session, online: Runtime, team: Team, fake: FakeOpenAI, connection: Connection
) -> None:
    from runhq.scheduler.tasks import Scheduler

    seen_in_transaction: list[bool] = []

    def answer(body: dict[str, object]) -> str:
        # Inside the model call no (nested) transaction of the scheduler is open.
        seen_in_transaction.append(connection.in_nested_transaction())
        return json.dumps(
            {"jobs_to_run": ["brief"], "reasoning": "morning brief", "next_check_in_minutes": 30}
        )

    with FrozenClock(T0):
        service.create_schedule(
            session,
            team.admin,
            online.registry,
            job_key="brief",
            run_type="DAILY_EXECUTIVE_BRIEF",
            cron="0 8 * * *",
        )
        autopilot.set_autopilot(
            session, team.admin, enabled=True, interval_minutes=5, default_interval=5
        )
        session.commit()
        session.close()
        fake.responder = answer
        report = Scheduler(online, holder="test").tick()
    assert report.leader
    assert report.cycles == 1
    entry = session.scalars(
        select(StructuredLog).where(StructuredLog.message == autopilot.DECISION)
    ).one()
    assert entry.meta["accepted"] == ["brief"]
    assert entry.meta["next_check_in_minutes"] == 30
    assert seen_in_transaction == [False]
    with FrozenClock(T0):  # the scheduler's path bills the call too
        report_ = costs.get_cost_report(session, team.workspace_id, tz="Europe/Paris")
    assert [(line.key, line.runs) for line in report_.model_calls] == [("autopilot", 1)]


def test_the_autopilots_model_calls_are_billed(
    session: Session, online: Runtime, team: Team, fake: FakeOpenAI
) -> None:
    with FrozenClock(T0):
        _setup(session, online, team)
        answer = {"jobs_to_run": [], "reasoning": "Nothing needed.", "next_check_in_minutes": 30}
        fake.enqueue_content(json.dumps(answer))
        entry = _cycle(session, online, team)
        report = costs.get_cost_report(session, team.workspace_id, tz="Europe/Paris")
    call = entry.meta["model_call"]
    assert call["model"] == online.registry.run_types["DAILY_EXECUTIVE_BRIEF"].model
    assert call["tokens_in"] > 0
    assert call["tokens_out"] > 0
    assert call["cost_eur"] > 0
    [line] = report.model_calls
    assert (line.key, line.runs) == ("autopilot", 1)
    assert line.total_cost == pytest.approx(call["cost_eur"], abs=1e-6)  # reports round to µ€
    runs_total = sum(line.total_cost for line in report.by_run_type)
    assert report.total_cost == pytest.approx(runs_total + call["cost_eur"], abs=1e-6)
    decision = autopilot.read_decision(entry)  # what /api/v1/autopilot/decisions returns
    assert decision.model_call is not None
    assert decision.model_call.cost_eur == call["cost_eur"]
    assert decision.model_refused is None


def test_unusable_answers_are_billed_too(
    session: Session, online: Runtime, team: Team, fake: FakeOpenAI
) -> None:
    with FrozenClock(T0):
        _setup(session, online, team)
        fake.enqueue_content("{not json")
        fake.enqueue_content('{"jobs_to_run": "brief"}')
        entry = _cycle(session, online, team)
        report = costs.get_cost_report(session, team.workspace_id, tz="Europe/Paris")
    assert entry.meta["error"]
    assert entry.meta["model_call"]["tokens_in"] > 0
    assert [(line.key, line.runs) for line in report.model_calls] == [("autopilot", 1)]


def test_a_spent_global_budget_stops_the_model_calls(
    session: Session, online: Runtime, team: Team, fake: FakeOpenAI
) -> None:
    with FrozenClock(T0):
        _setup(session, online, team)
        costs.create_model_usage(
            session,
            team.workspace_id,
            source="autopilot",
            model="gemini-2.5-pro",
            tokens_in=100,
            tokens_out=10,
            cost_eur=2.0,
        )
        costs.set_budget(session, team.workspace_id, scope="global", monthly_limit_eur=1.0)
        session.commit()
        calls_before = len(fake.chat_requests)
        entry = _cycle(session, online, team)
    assert len(fake.chat_requests) == calls_before  # nothing reached the model
    meta = entry.meta
    assert meta["mode"] == "deterministic"
    assert "budget" in meta["model_refused"]
    assert "model not called" in meta["reasoning"]
    assert meta["model_call"] is None
    assert autopilot.read_decision(entry).model_refused == meta["model_refused"]
    # The schedules were created at T0: nothing is due by cron yet, so nothing runs.
    assert meta["jobs_to_run"] == []
