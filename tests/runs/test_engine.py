"""The engine end to end: every run type on the offline provider and on the fake
OpenAI-compatible server; failures, cancellation and replayable context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from runhq.auth.schemas import Actor
from runhq.logs.models import StructuredLog
from runhq.registry.service import get_registry
from runhq.runs import service as runs
from runhq.runs.engine import build_messages
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, make_runtime, make_settings
from tests.fakes.openai_server import FakeOpenAI

REGISTRY = get_registry()
ALL_TYPES = list(REGISTRY.run_types)
MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-flash")

# Minimal valid params for the types that require some.
REQUIRED_PARAMS = {
    "PRICING_CHANGE": {"product": "prod_123", "new_amount_cents": 2900, "currency": "eur"},
    "MASS_EMAIL_CAMPAIGN": {"subject": "November news"},
    "RLS_POLICY_UPDATE": {"table": "invoices"},
}


def _start(runtime: Runtime, session: Session, actor: Actor, run_type: str, owner: Actor) -> Run:
    run, _ = runs.create_run(
        session,
        actor,
        runtime.registry,
        run_type=run_type,
        params=REQUIRED_PARAMS.get(run_type, {}),
    )
    if run.status == RunStatus.pending_approval:
        runs.approve_run(session, owner, run.id, reason="test")
    session.commit()
    return run


def _messages(session: Session, run: Run) -> list[str]:
    return list(
        session.scalars(
            select(StructuredLog.message)
            .where(StructuredLog.run_id == run.id)
            .order_by(StructuredLog.created_at)
        )
    )


def _expected(run_type: str) -> RunStatus:
    """Action runs stop at their plan, waiting for the owner; the others complete."""
    if REGISTRY.run_types[run_type].action:
        return RunStatus.pending_approval
    return RunStatus.completed


def test_registry_has_the_29_types() -> None:
    assert len(ALL_TYPES) == 29


@pytest.mark.parametrize("run_type", ALL_TYPES)
def test_every_type_completes_offline(
    runtime: Runtime, session: Session, team: Team, run_type: str
) -> None:
    run = _start(runtime, session, team.operator, run_type, team.owner)
    assert runtime.engine.execute(run.id) == _expected(run_type)
    session.refresh(run)
    assert run.model_used == "offline"
    assert run.executive_summary
    # In the report language (French by default), saying it is the offline report.
    assert "rapport hors ligne" in run.executive_summary
    assert run.actual_cost == 0.0
    assert run.context is not None
    assert set(run.context["facts"]) == set(REGISTRY.run_types[run_type].context)
    assert run.duration_ms is not None
    events = _messages(session, run)
    if REGISTRY.run_types[run_type].action:
        assert events[-2:] == ["run.started", "run.awaiting_approval"]
        assert run.plan is not None
        assert run.plan["action"] == REGISTRY.run_types[run_type].action
        assert run.phase == "review"
        assert run.active_key is not None  # still holds its slot while it waits
    else:
        assert events[-2:] == ["run.started", "run.completed"]
        assert run.active_key is None


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=MODELS) as server:
        yield server


@pytest.fixture
def online(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    db_engine: Engine,
    fake: FakeOpenAI,
) -> Runtime:
    fake.reset()
    settings = make_settings(
        tmp_path, database_url, llm_base_url=fake.base_url, llm_api_key=fake.api_key
    )
    return make_runtime(settings, sessions, db_engine)


def _report(summary: str) -> str:
    return json.dumps(
        {
            "executive_summary": summary,
            "sections": [{"title": "Findings", "content": "…"}],
            "recommendations": ["Do the thing"],
        }
    )


@pytest.mark.parametrize("run_type", ALL_TYPES)
def test_every_type_completes_against_the_fake_model(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI, run_type: str
) -> None:
    spec = REGISTRY.run_types[run_type]
    fake.enqueue_content(_report(f"{run_type} summary"), model=spec.model)
    run = _start(online, session, team.operator, run_type, team.owner)
    assert online.engine.execute(run.id) == _expected(run_type)
    session.refresh(run)
    assert run.executive_summary == f"{run_type} summary"
    assert run.model_used == spec.model
    assert run.tokens_in > 0
    assert run.tokens_out > 0
    assert run.actual_cost is not None
    assert run.actual_cost > 0
    assert run.price is not None
    assert run.price["model"] == spec.model
    request = fake.chat_requests[-1].body
    assert request is not None
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert REGISTRY.agents[spec.agent].persona[:60] in system
    assert spec.task_prompt[:60] in system
    assert json.loads(user.split("\n", 1)[1])["facts"].keys() == set(spec.context)
    assert run.prompt is not None
    assert run.prompt["messages"][0]["content"] == system
    # The model is asked to write in the report language (French by default).
    assert "Write every text of the report in French" in system


def test_the_prompt_asks_for_the_report_language() -> None:
    spec = REGISTRY.run_types["DAILY_EXECUTIVE_BRIEF"]
    persona = REGISTRY.agents[spec.agent].persona
    for lang, name in (("fr", "French"), ("en", "English")):
        system = build_messages(spec, persona, {"facts": {}}, lang)[0]["content"]
        assert f"Write every text of the report in {name}" in system
        assert system.index("Answer with ONE JSON object") < system.index("Write every text")


def test_model_failure_fails_the_run_with_a_sanitised_error(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    for _ in range(6):
        fake.enqueue_server_error(500)
    run = _start(online, session, team.operator, "SEO_AUDIT", team.owner)
    assert online.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert run.error is not None
    assert "HTTP 500" in run.error
    assert fake.api_key not in run.error
    assert run.context is not None  # the facts were kept: the run can be replayed
    assert _messages(session, run)[-1] == "run.failed"
    failed_log = session.scalars(
        select(StructuredLog).where(
            StructuredLog.run_id == run.id, StructuredLog.message == "run.failed"
        )
    ).one()
    assert failed_log.level == "error"
    assert "HTTP 500" in failed_log.meta["error_message"]
    # The failed run can be retried into a new, linked run.
    retry = runs.retry_run(
        session,
        team.owner,
        online.registry,
        run.id,
        stuck_after=online.stuck_after,
        tz="Europe/Paris",
    )
    assert retry.parent_run_id == run.id


def test_invalid_output_twice_fails_and_records_what_it_cost(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    for _ in range(4):  # twice for the model, twice for its fallback
        fake.enqueue_content("{oops")
    run = _start(online, session, team.operator, "SEO_AUDIT", team.owner)
    assert online.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "invalid report twice" in (run.error or "")
    assert run.actual_cost is not None
    assert run.actual_cost > 0
    assert len(fake.chat_requests) == 4


def test_invalid_output_falls_back_and_the_bill_includes_the_failed_calls(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    spec = REGISTRY.run_types["CODE_REVIEW"]  # gemini-2.5-pro, falling back to 2.5-flash
    assert spec.fallback_model is not None
    fake.enqueue_content("{oops", model=spec.model)
    fake.enqueue_content("{oops", model=spec.model)
    fake.enqueue_content(_report("from the fallback"), model=spec.fallback_model)
    run = _start(online, session, team.operator, "CODE_REVIEW", team.owner)
    assert online.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.model_used == spec.fallback_model
    assert run.executive_summary == "from the fallback"
    fallback = online.settings.llm_models[spec.fallback_model]
    cost_if_only_fallback = (
        run.tokens_in * fallback.input_eur_per_mtok / 1e6
        + run.tokens_out * fallback.output_eur_per_mtok / 1e6
    )
    assert run.actual_cost is not None
    # Every token priced at the cheaper fallback would cost less: the primary is billed too.
    assert run.actual_cost > cost_if_only_fallback
    assert len(fake.chat_requests) == 3


def test_a_claimed_run_is_not_executed_twice(
    runtime: Runtime, session: Session, team: Team
) -> None:
    run = _start(runtime, session, team.operator, "SEO_AUDIT", team.owner)
    assert runtime.engine.execute(run.id) == RunStatus.completed
    assert runtime.engine.execute(run.id) is None
    assert _messages(session, run).count("run.started") == 1


def test_pending_approval_never_reaches_the_model(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    run, _ = runs.create_run(session, team.operator, online.registry, run_type="RELEASE_GATE_CHECK")
    session.commit()
    assert online.engine.execute(run.id) is None
    assert fake.chat_requests == []
    session.refresh(run)
    assert run.status == RunStatus.pending_approval


def test_a_run_cancelled_while_its_facts_are_gathered_never_starts(
    online: Runtime,
    session: Session,
    team: Team,
    fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runhq.runs import engine as engine_module

    run = _start(online, session, team.operator, "SEO_AUDIT", team.owner)
    real_gather = engine_module.gather_context

    def gather_then_cancel(req: Any, names: list[str]) -> dict[str, Any]:
        runs.cancel_run(req.session, team.owner, req.run_id)
        req.session.commit()  # as the API, in another request, would have
        return real_gather(req, names)

    monkeypatch.setattr(engine_module, "gather_context", gather_then_cancel)
    # The facts are gathered before the claim: the run is still queued, so the cancel
    # takes effect at once and the claim finds nothing to claim.
    assert online.engine.execute(run.id) is None
    assert fake.chat_requests == []
    session.refresh(run)
    assert run.status == RunStatus.cancelled
    assert run.started_at is None
    assert "run.started" not in _messages(session, run)


def test_cancel_during_the_model_call_wins_and_keeps_the_cost(
    online: Runtime,
    session: Session,
    sessions: sessionmaker[Session],
    team: Team,
    fake: FakeOpenAI,
) -> None:
    run = _start(online, session, team.operator, "SEO_AUDIT", team.owner)
    run_id = run.id

    def cancel_then_answer(body: dict[str, Any]) -> str:
        with sessions() as other:
            runs.cancel_run(other, team.owner, run_id)
            other.commit()
        return _report("too late")

    fake.responder = cancel_then_answer
    assert online.engine.execute(run.id) == RunStatus.cancelled
    session.refresh(run)
    assert run.status == RunStatus.cancelled
    assert run.actual_cost is not None
    assert run.actual_cost > 0
    assert "run.completed" not in _messages(session, run)


def test_cancelled_queued_run_is_not_executed(
    runtime: Runtime, session: Session, team: Team
) -> None:
    run = _start(runtime, session, team.operator, "SEO_AUDIT", team.owner)
    runs.cancel_run(session, team.owner, run.id)
    session.commit()
    assert runtime.engine.execute(run.id) is None


def test_a_run_claimed_by_another_worker_while_gathering_never_reaches_the_model(
    online: Runtime,
    session: Session,
    team: Team,
    fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runhq.runs import engine as engine_module
    from runhq.runs.state import claim, get_run_record

    run = _start(online, session, team.operator, "SEO_AUDIT", team.owner)
    real_gather = engine_module.gather_context
    other: list[Any] = []

    def gather_while_another_claims(req: Any, names: list[str]) -> dict[str, Any]:
        facts = real_gather(req, names)
        # A redelivered task: another worker claimed the run first.
        record = get_run_record(req.session.connection(), req.run_id)
        assert claim(req.session.connection(), record)
        req.session.commit()
        other.append(record.claim_token)
        return facts

    monkeypatch.setattr(engine_module, "gather_context", gather_while_another_claims)
    assert online.engine.execute(run.id) is None
    assert fake.chat_requests == []
    session.refresh(run)
    assert run.status == RunStatus.running
    assert run.claim_token == other[0]  # the other worker's claim stands
    assert _messages(session, run).count("run.started") == 1


def test_facts_and_prompt_are_stored_by_the_claim(
    online: Runtime,
    session: Session,
    sessions: sessionmaker[Session],
    team: Team,
    fake: FakeOpenAI,
) -> None:
    """What the model is sent is on the run before the model answers (replayable even if
    the call never returns)."""
    run = _start(online, session, team.operator, "SEO_AUDIT", team.owner)
    run_id = run.id
    seen: list[tuple[Any, Any, Any]] = []

    def look_then_answer(body: dict[str, Any]) -> str:
        with sessions() as other:
            stored = other.get(Run, run_id)
            assert stored is not None
            seen.append((stored.status, stored.context, stored.prompt))
        return _report("looked")

    fake.responder = look_then_answer
    assert online.engine.execute(run.id) == RunStatus.completed
    status, context, prompt = seen[0]
    assert status == RunStatus.running
    assert context is not None
    assert "facts" in context
    assert prompt is not None
    assert prompt["messages"] == fake.chat_requests[0].body["messages"]
    # run.started is stamped when the worker began, before its facts (seed 001's order).
    session.refresh(run)
    started_line = session.scalars(
        select(StructuredLog).where(
            StructuredLog.run_id == run.id, StructuredLog.message == "run.started"
        )
    ).one()
    assert started_line.created_at == run.started_at
    assert run.started_at is not None
    assert run.heartbeat_at is not None
    assert run.started_at <= run.heartbeat_at


def test_heartbeats_are_recorded_while_the_model_thinks(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    db_engine: Engine,
    session: Session,
    team: Team,
    fake: FakeOpenAI,
) -> None:
    import time as _time

    from tests.fakes.openai_server import default_responder

    fake.reset()
    settings = make_settings(
        tmp_path,
        database_url,
        llm_base_url=fake.base_url,
        llm_api_key=fake.api_key,
        heartbeat_seconds=0.2,
    )
    rt = make_runtime(settings, sessions, db_engine)

    def slow(body: dict[str, Any]) -> str:
        _time.sleep(1.0)
        return default_responder(body)

    fake.responder = slow
    run = _start(rt, session, team.operator, "SEO_AUDIT", team.owner)
    assert rt.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.heartbeat_at is not None
    assert run.started_at is not None
    assert (run.heartbeat_at - run.started_at).total_seconds() >= 0.2


def test_a_run_whose_type_left_the_registry_fails_instead_of_staying_queued(
    runtime: Runtime, session: Session, team: Team
) -> None:
    """Preparing the prompt fails (the run type was removed since the run was created): the
    run is claimed and failed with the reason, never left queued to be sent again forever."""
    from dataclasses import replace

    from runhq.runs.engine import Engine as RunEngine

    run = _start(runtime, session, team.operator, "SEO_AUDIT", team.owner)
    types = {k: v for k, v in runtime.registry.run_types.items() if k != "SEO_AUDIT"}
    engine = RunEngine(
        runtime.engine.sessions,
        runtime.settings,
        replace(runtime.registry, run_types=types),
        runtime.engine.gateway,
    )
    assert engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert run.status == RunStatus.failed
    assert "RunTypeUnknown" in (run.error or "")
    assert _messages(session, run)[-2:] == ["run.started", "run.failed"]


def test_a_gate_asks_the_model_for_its_verdict_and_keeps_it(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    spec = REGISTRY.run_types["RELEASE_GATE_CHECK"]
    report = json.loads(_report("No-go: CI is red on the candidate."))
    report.update(verdict="fail", verdict_reasons=["CI red on abc123"])
    fake.enqueue_content(json.dumps(report), model=spec.model)
    run = _start(online, session, team.operator, "RELEASE_GATE_CHECK", team.owner)
    assert online.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.output is not None
    assert (run.output["verdict"], run.output["verdict_by"]) == ("fail", spec.model)
    assert run.output["verdict_reasons"] == ["CI red on abc123"]
    system = fake.chat_requests[-1].body["messages"][0]["content"]
    assert "Always give verdict" in system
    assert '"verdict":{"enum":["pass","fail"]}' in system


def test_a_gate_verdict_other_than_pass_or_fail_is_repaired(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    spec = REGISTRY.run_types["RELEASE_GATE_CHECK"]
    vague = json.loads(_report("Probably fine."))
    vague["verdict"] = "maybe"
    fixed = {**vague, "verdict": "pass", "verdict_reasons": []}
    fake.enqueue_content(json.dumps(vague), model=spec.model)
    fake.enqueue_content(json.dumps(fixed), model=spec.model)
    run = _start(online, session, team.operator, "RELEASE_GATE_CHECK", team.owner)
    assert online.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.output is not None
    assert (run.output["verdict"], run.output["verdict_by"]) == ("pass", spec.model)
    repair = fake.chat_requests[-1].body["messages"][-1]["content"]
    assert "gate report schema" in repair


def test_a_report_without_verdict_is_judged_by_the_rule(
    online: Runtime, session: Session, team: Team, fake: FakeOpenAI
) -> None:
    spec = REGISTRY.run_types["RELEASE_GATE_CHECK"]
    fake.enqueue_content(_report("Looks good."), model=spec.model)
    run = _start(online, session, team.operator, "RELEASE_GATE_CHECK", team.owner)
    assert online.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.output is not None
    assert (run.output["verdict"], run.output["verdict_by"]) == ("pass", "rule")
