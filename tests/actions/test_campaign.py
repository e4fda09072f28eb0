"""MASS_EMAIL_CAMPAIGN through a local SMTP server (aiosmtpd): consent, one email per
recipient, List-Unsubscribe, and a retried campaign that never sends twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from runhq.actions import campaigns
from runhq.actions.models import CampaignDelivery, Contact
from runhq.config import Settings
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runs.state import transition
from runhq.runtime import Runtime
from tests.conftest import Team, make_runtime, make_settings, make_team
from tests.fakes.smtp_server import FakeSmtp

N = 500


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def _mailer_settings(tmp_path: Path, database_url: str, smtp: FakeSmtp) -> Settings:
    ca = tmp_path / "smtp-ca.pem"
    ca.write_bytes(smtp.cert_pem)
    return make_settings(
        tmp_path,
        database_url,
        smtp_host="localhost",
        smtp_port=smtp.port,
        smtp_username=smtp.username,
        smtp_password=smtp.password,
        smtp_sender="news@example.com",
        smtp_ca_file=ca,
        public_base_url="https://hq.example.com",
    )


@pytest.fixture
def mailer(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    db_engine: Engine,
    smtp: FakeSmtp,
) -> Runtime:
    return make_runtime(_mailer_settings(tmp_path, database_url, smtp), sessions, db_engine)


def _contacts(session: Session, team: Team) -> None:
    rows = [{"email": f"user{i:03d}@example.com", "consent": True} for i in range(N)]
    rows += [{"email": f"nope{i:02d}@example.com", "consent": False} for i in range(20)]
    campaigns.import_contacts(session, team.admin, rows)
    session.commit()


def _approved_campaign(rt: Runtime, session: Session, team: Team, parent: Run | None = None) -> Run:
    if parent is None:
        run, _ = runs.create_run(
            session,
            team.operator,
            rt.registry,
            run_type="MASS_EMAIL_CAMPAIGN",
            params={"subject": "November news", "body": "Hello from the HQ."},
        )
    else:
        run = runs.retry_run(
            session,
            team.owner,
            rt.registry,
            parent.id,
            stuck_after=rt.stuck_after,
            tz="Europe/Paris",
        )
    session.commit()
    assert rt.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    assert run.plan is not None
    assert run.plan["audience"]["consented_contacts"] == N
    runs.approve_run(session, team.owner, run.id, reason="send it")
    session.commit()
    return run


def test_campaign_reaches_each_consented_contact_once(
    mailer: Runtime, session: Session, team: Team, smtp: FakeSmtp
) -> None:
    _contacts(session, team)
    run = _approved_campaign(mailer, session, team)
    assert mailer.engine.execute(run.id) == RunStatus.completed
    recipients = [r for m in smtp.messages for r in m.rcpt_tos]
    assert len(recipients) == N
    assert len(set(recipients)) == N
    assert not [r for r in recipients if r.startswith("nope")]
    first = smtp.messages[0].message
    assert first["Subject"] == "November news"
    assert str(first["List-Unsubscribe"]).strip().startswith("<https://hq.example.com/unsubscribe/")
    assert str(first["List-Unsubscribe-Post"]).strip() == "List-Unsubscribe=One-Click"
    session.refresh(run)
    assert run.action_result is not None
    assert run.action_result["totals"] == {"sent": N}


def test_a_retried_campaign_sends_only_the_rest(
    mailer: Runtime, session: Session, team: Team, smtp: FakeSmtp
) -> None:
    _contacts(session, team)
    run = _approved_campaign(mailer, session, team)
    # A crash mid-campaign: 200 sent, one caught between "sending" and "sent", run lost.
    contacts = session.scalars(
        select(Contact.id).where(Contact.consent.is_(True)).order_by(Contact.email)
    ).all()
    campaign_id = run.id
    for i, contact_id in enumerate(contacts[:201]):
        session.add(
            CampaignDelivery(
                workspace_id=team.workspace_id,
                campaign_id=campaign_id,
                run_id=run.id,
                contact_id=contact_id,
                status="sent" if i < 200 else "sending",
                created_at=run.created_at,
            )
        )
    transition(session, run, RunStatus.running)
    transition(session, run, RunStatus.failed, values={"error": "worker lost"})
    session.commit()
    retry = _approved_campaign(mailer, session, team, parent=run)
    assert mailer.engine.execute(retry.id) == RunStatus.completed
    recipients = [r for m in smtp.messages for r in m.rcpt_tos]
    assert len(recipients) == N - 201  # the rest; the one left "sending" is not resent
    assert len(set(recipients)) == len(recipients)
    sent_before = {f"user{i:03d}@example.com" for i in range(201)}
    assert sent_before.isdisjoint(recipients)
    session.refresh(retry)
    assert retry.action_result is not None
    assert retry.action_result["totals"] == {"sent": N - 1, "sending": 1}


def test_unsubscribed_contacts_are_left_out(
    mailer: Runtime, session: Session, team: Team, smtp: FakeSmtp, client: TestClient
) -> None:
    _contacts(session, team)
    token = session.scalar(
        select(Contact.unsubscribe_token).where(Contact.email == "user000@example.com")
    )
    page = client.get(f"/unsubscribe/{token}")  # a link scanner's GET changes nothing
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert client.post(f"/unsubscribe/{token}").status_code == 200
    assert client.get("/unsubscribe/unknown-token").status_code == 404
    run, _ = runs.create_run(
        session,
        team.operator,
        mailer.registry,
        run_type="MASS_EMAIL_CAMPAIGN",
        params={"subject": "Hi"},
    )
    session.commit()
    assert mailer.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    runs.approve_run(session, team.owner, run.id, reason="ok")
    session.commit()
    assert mailer.engine.execute(run.id) == RunStatus.completed
    recipients = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert "user000@example.com" not in recipients
    assert len(recipients) == N - 1


def test_permanent_refusals_are_recorded_per_recipient(
    mailer: Runtime, session: Session, team: Team, smtp: FakeSmtp
) -> None:
    campaigns.import_contacts(
        session,
        team.admin,
        [{"email": "a@example.com", "consent": True}, {"email": "b@example.com", "consent": True}],
    )
    session.commit()
    smtp.fail_next("rcpt", 550, times=1)
    run, _ = runs.create_run(
        session,
        team.operator,
        mailer.registry,
        run_type="MASS_EMAIL_CAMPAIGN",
        params={"subject": "Hi"},
    )
    session.commit()
    assert mailer.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    runs.approve_run(session, team.owner, run.id, reason="ok")
    session.commit()
    assert mailer.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    assert run.action_result is not None
    assert run.action_result["totals"] == {"sent": 1, "failed": 1}
    assert run.action_result["ok"] is False


def test_contacts_api_bad_input(client: TestClient, mailer: Runtime, team: Team) -> None:
    from tests.conftest import bearer

    h = bearer(mailer, team.admin)
    r = client.post(
        "/api/v1/contacts", json=[{"email": "x@example.com", "consent": True}], headers=h
    )
    assert r.status_code == 201
    assert r.json() == {"written": 1, "audience": 1}
    assert (
        client.post(
            "/api/v1/contacts", json=[{"email": "bad", "consent": True}], headers=h
        ).status_code
        == 422
    )
    assert (
        client.post("/api/v1/contacts", json=[{"email": "y@example.com"}], headers=h).status_code
        == 422
    )
    assert (
        client.post("/api/v1/contacts", json=[], headers=bearer(mailer, team.operator)).status_code
        == 403
    )


def test_an_http_public_url_refuses_before_sending_anything(
    mailer: Runtime, session: Session, team: Team, smtp: FakeSmtp
) -> None:
    _contacts(session, team)
    insecure = mailer.settings.model_copy(update={"public_base_url": "http://hq.example.com"})
    mailer.engine.settings = insecure
    run = _approved_campaign(mailer, session, team)
    assert mailer.engine.execute(run.id) == RunStatus.failed
    session.refresh(run)
    assert "must be https" in (run.error or "")
    assert smtp.messages == []


def test_an_owner_stops_a_campaign_mid_way(
    tmp_path: Path, fresh_database_url: str, smtp: FakeSmtp
) -> None:
    # Real connections (the owner's cancel comes from another one while the worker sends).
    db = build_engine(fresh_database_url)
    upgrade(db)
    try:
        sessions = make_session_factory(db)
        mailer = make_runtime(_mailer_settings(tmp_path, fresh_database_url, smtp), sessions, db)
        with sessions() as session:
            team = make_team(session)
            session.commit()
            _contacts(session, team)
            run = _approved_campaign(mailer, session, team)

        def cancel_after_ten(count: int) -> None:
            # The owner presses "cancel" while the tenth message is being accepted (the
            # worker waits for the server's answer meanwhile).
            if count == 10:
                with transaction(sessions) as other:
                    runs.cancel_run(other, team.owner, run.id)

        smtp.on_message = cancel_after_ten
        assert mailer.engine.execute(run.id) == RunStatus.cancelled
        assert len(smtp.messages) == 10  # not one more after the cancel
        with sessions() as session:
            done = session.get(Run, run.id)
            assert done is not None
            assert done.action_result is not None
            assert done.action_result["stopped"] == "cancel requested"
            assert done.action_result["totals"] == {"sent": 10, "pending": N - 10}
            assert "stopped (cancel requested) after 10 emails" in (done.executive_summary or "")
    finally:
        db.dispose()


def test_a_beating_campaign_outlives_its_run_types_timeout(
    mailer: Runtime, session: Session, team: Team
) -> None:
    from datetime import timedelta

    from runhq import clock
    from runhq.clock import FrozenClock

    _contacts(session, team)
    run = _approved_campaign(mailer, session, team)
    timeout = timedelta(seconds=mailer.registry.run_types["MASS_EMAIL_CAMPAIGN"].timeout_seconds)
    start = clock.now()
    with FrozenClock(start) as frozen:
        transition(session, run, RunStatus.running, values={"heartbeat_at": start})
        session.commit()
        frozen.advance(timeout * 3)
        run.heartbeat_at = clock.now()  # its worker beats: alive, however long it sends
        session.commit()
        assert (
            runs.reap_stuck_runs(session, mailer.registry, heartbeat_timeout=timedelta(seconds=60))
            == []
        )
        frozen.advance(timedelta(seconds=61))  # no beat for a minute: the worker is gone
        [(reaped, reason)] = runs.reap_stuck_runs(
            session, mailer.registry, heartbeat_timeout=timedelta(seconds=60)
        )
    assert reaped.id == run.id
    assert reason.startswith("worker lost")
