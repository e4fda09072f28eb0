"""Autopilot (/autopilot): the switch (admins, CSRF), the schedules with their next firings in
the page's language and each schedule's zone, the decision journal with refused jobs and
their reasons, empty states, pages, and a bounded number of queries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq.auth.models import Role
from runhq.clock import FrozenClock
from runhq.costs import service as costs
from runhq.logs import service as logs
from runhq.logs.schemas import LogSource
from runhq.runs import service as runs
from runhq.runtime import Runtime
from runhq.scheduler import autopilot, service
from tests.conftest import Team, counted_statements
from tests.dashboard.conftest import csrf_of, log_in

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Paris, 03:00 in New York


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with FrozenClock(T0) as frozen:
        yield frozen


def _page(client: TestClient, team: Team, role: Role = Role.owner, url: str = "/autopilot") -> str:
    log_in(client, team.emails[role])
    r = client.get(url)
    assert r.status_code == 200, r.text
    return r.text


def _schedule(session: Session, runtime: Runtime, team: Team, job_key: str, **fields: Any) -> None:
    values: dict[str, Any] = {"run_type": "DAILY_EXECUTIVE_BRIEF", "cron": "0 8 * * *"}
    values.update(fields)
    service.create_schedule(session, team.admin, runtime.registry, job_key=job_key, **values)


def _card(html: str, attr: str, value: str) -> str:
    match = re.search(rf'<article[^>]*{attr}="{value}".*?</article>', html, re.S)
    assert match, f"no card {attr}={value}"
    return match.group(0)


def _decision(session: Session, team: Team, **meta: Any) -> None:
    """A journal line as an autopilot cycle writes it."""
    logs.create_log(
        session,
        message=autopilot.DECISION,
        source=LogSource.autopilot,
        workspace_id=team.workspace_id,
        metadata={
            "mode": "model",
            "jobs_to_run": [],
            "accepted": [],
            "rejected": [],
            "run_ids": [],
            "awaiting_approval": [],
            "reasoning": "Nothing is due.",
            "paris_hour": 9,
            "next_check_in_minutes": 5,
            "error": None,
            "snapshot": {"now": T0.isoformat()},
            **meta,
        },
    )


# -- reading ----------------------------------------------------------------------------------


def test_an_empty_workspace_says_what_to_do(client: TestClient, team: Team) -> None:
    html = _page(client, team)
    state = re.search(r'<section class="card autopilot-state".*?</section>', html, re.S)
    assert state
    assert 'data-enabled="false"' in state.group(0)
    assert 'role="switch" aria-checked="false"' in state.group(0)
    assert "Règle déterministe" in state.group(0)  # no model configured in tests
    assert "toutes les 5 min" in state.group(0)
    assert 'data-empty="schedules"' in html
    assert "Aucune tâche planifiée." in html
    assert "runhq schedules add" in html
    assert 'data-empty="journal"' in html
    assert "Aucune décision pour l&#39;instant." in html
    assert 'href="/autopilot" aria-current="page"' in html


def test_schedules_show_their_next_firings_in_their_own_zone(
    client: TestClient, session: Session, runtime: Runtime, team: Team, clock: FrozenClock
) -> None:
    _schedule(session, runtime, team, "brief", cron="30 7 * * 1-5")  # Paris, weekdays
    _schedule(
        session,
        runtime,
        team,
        "ny-seo",
        run_type="SEO_AUDIT",
        cron="0 9 * * *",
        timezone="America/New_York",
        platform_key="app",
    )
    _schedule(session, runtime, team, "paused", run_type="FINANCIAL_REPORT", enabled=False)
    session.commit()
    html = _page(client, team)
    brief = _card(html, "data-job", "brief")
    assert "Brief exécutif quotidien" in brief
    assert "<code>30 7 * * 1-5</code>" in brief
    assert "Europe/Paris" in brief
    assert "5 prochains déclenchements (Europe/Paris)" in brief
    # Monday 09:00 in Paris: today's 07:30 has passed; the next five weekdays.
    shown = re.findall(r"<time datetime=\"[^\"]+\">([^<]+)</time>", brief)
    assert shown == [
        "3 nov. 2026 à 07:30",
        "4 nov. 2026 à 07:30",
        "5 nov. 2026 à 07:30",
        "6 nov. 2026 à 07:30",
        "9 nov. 2026 à 07:30",
    ]
    ny = _card(html, "data-job", "ny-seo")
    assert "America/New_York" in ny
    assert "plateforme app" in ny
    assert '<time datetime="2026-11-02T14:00:00+00:00">2 nov. 2026 à 09:00</time>' in ny
    paused = _card(html, "data-job", "paused")
    assert 'data-enabled="false"' in paused
    assert "Désactivée" in paused
    assert "aucun déclenchement prévu" in paused
    assert "<time" not in paused  # no firing listed
    assert "aucun pour l&#39;instant" in paused  # no run started by it yet

    client.cookies.set("runhq_lang", "en")
    english = _card(client.get("/autopilot").text, "data-job", "brief")
    assert "Next 5 firings (Europe/Paris)" in english
    assert ">3 Nov 2026, 07:30<" in english
    assert "Daily executive brief" in english


def test_the_journal_shows_what_was_proposed_started_and_refused(
    client: TestClient, session: Session, runtime: Runtime, team: Team, clock: FrozenClock
) -> None:
    for job_key, run_type in [
        ("brief", "DAILY_EXECUTIVE_BRIEF"),
        ("deploy", "DEPLOY_TO_PRODUCTION"),
        ("seo", "SEO_AUDIT"),
        ("rivals", "COMPETITIVE_ANALYSIS"),
    ]:
        _schedule(session, runtime, team, job_key, run_type=run_type)
    runs.create_run(session, team.operator, runtime.registry, run_type="SEO_AUDIT")  # busy
    costs.set_budget(session, team.workspace_id, scope="CSO", monthly_limit_eur=0.01)
    autopilot.set_autopilot(
        session, team.admin, enabled=True, interval_minutes=5, default_interval=5
    )
    session.commit()
    clock.advance(timedelta(days=1))  # every job is due (08:00 Paris has passed)
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
    assert entry is not None
    # A model's cycle that proposed a job that does not exist, and failed to answer well.
    clock.advance(timedelta(minutes=5))
    _decision(
        session,
        team,
        jobs_to_run=["ghost"],
        rejected=[{"job_key": "ghost", "reason": "unknown job: no such schedule"}],
        reasoning="Run the ghost job at the start of the day.",
        paris_hour=10,
        error="the answer was cut short",
    )
    session.commit()
    decision = autopilot.read_decision(entry)

    html = _page(client, team)
    assert html.count('<article class="card journal-entry"') == 2
    journal = html.split('id="journal-title"')[1]
    assert journal.index("ghost") < journal.index("deploy")  # newest first
    first = _card(html, "data-decision-id", str(entry.id))
    assert "Règle déterministe" in first
    assert "9 h à Paris" in first
    assert "Deterministic policy (no model configured)" in first  # its reasoning, as written
    assert "Proposées (4)" in first
    assert "Lancées (2)" in first
    assert "Refusées (2)" in first
    refused = first.split('data-jobs="rejected"')[1]
    assert "<code>seo</code>" in refused
    assert "already queued" in refused  # the anti-double-run's reason
    assert "<code>rivals</code>" in refused
    assert "monthly budget of agent CSO exceeded" in refused
    started = first.split('data-jobs="accepted"')[1].split('data-jobs="rejected"')[0]
    assert "Déploiement en production" in started
    assert "attend une approbation" in started
    for run_id in decision.run_ids:
        assert f'href="/runs/{run_id}"' in started
    assert "Passage suivant prévu 5 min plus tard." in first

    second = html.split('id="journal-title"')[1].split("</article>")[0]
    assert "Modèle IA" in second
    assert "Run the ghost job at the start of the day." in second
    assert "Réponse du modèle inutilisable\u00a0: the answer was cut short" in second
    assert "unknown job: no such schedule" in second


# -- the switch --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.owner, Role.admin])
def test_admins_switch_the_autopilot_on_and_off(
    client: TestClient, session: Session, team: Team, role: Role
) -> None:
    html = _page(client, team, role)
    r = client.post(
        "/autopilot/switch",
        data={"enabled": "true", "csrf_token": csrf_of(html)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/autopilot?done=on"
    session.expire_all()
    assert autopilot.get_autopilot(session, team.workspace_id, 5).enabled
    html = client.get(r.headers["location"]).text
    assert 'role="switch" aria-checked="true"' in html
    assert "Autopilot activé" in html
    assert 'name="enabled" value="false"' in html
    r = client.post(
        "/autopilot/switch",
        data={"enabled": "false", "csrf_token": csrf_of(html)},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/autopilot?done=off"
    session.expire_all()
    assert not autopilot.get_autopilot(session, team.workspace_id, 5).enabled


@pytest.mark.parametrize("role", [Role.operator, Role.viewer])
def test_other_roles_see_the_state_but_cannot_switch(
    client: TestClient, session: Session, team: Team, role: Role
) -> None:
    html = _page(client, team, role)
    assert 'role="switch"' not in html
    assert "Un administrateur ou un propriétaire peut activer" in html
    r = client.post(
        "/autopilot/switch",
        data={"enabled": "true", "csrf_token": csrf_of(html)},
        follow_redirects=False,
    )
    assert r.status_code == 403
    session.expire_all()
    assert not autopilot.get_autopilot(session, team.workspace_id, 5).enabled


def test_a_switch_without_the_csrf_token_is_refused(
    client: TestClient, session: Session, team: Team
) -> None:
    log_in(client, team.emails[Role.owner])
    r = client.post("/autopilot/switch", data={"enabled": "true"}, follow_redirects=False)
    assert r.status_code == 403
    assert "Formulaire expiré" in r.text
    session.expire_all()
    assert not autopilot.get_autopilot(session, team.workspace_id, 5).enabled


# -- pages and queries ---------------------------------------------------------------------------


def test_the_journal_pages_by_twenty(
    client: TestClient, session: Session, team: Team, clock: FrozenClock
) -> None:
    for i in range(23):
        clock.advance(timedelta(minutes=5))
        _decision(session, team, reasoning=f"cycle {i:02d}")
    session.commit()
    html = _page(client, team)
    assert html.count('<article class="card journal-entry"') == 20
    assert "cycle 22" in html
    assert "cycle 02" not in html
    match = re.search(r'href="(/autopilot\?cursor=[^"#]+)#journal-title"', html)
    assert match
    older = client.get(match.group(1)).text
    assert older.count('<article class="card journal-entry"') == 3
    assert "cycle 00" in older


def test_a_bounded_number_of_queries(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    db_engine: Engine,
    clock: FrozenClock,
) -> None:
    """Not N+1: the same statements with 1 schedule and decision, or 20 of each."""
    log_in(client, team.emails[Role.owner])

    def grow(start: int, n: int) -> None:
        for i in range(start, start + n):
            _schedule(session, runtime, team, f"job-{i}", timezone=("UTC", "Asia/Tokyo")[i % 2])
            clock.advance(timedelta(minutes=5))
            _decision(
                session,
                team,
                jobs_to_run=[f"job-{i}", "ghost"],
                accepted=[f"job-{i}"],
                run_ids=["00000000-0000-0000-0000-000000000001"],
                rejected=[{"job_key": "ghost", "reason": "unknown job: no such schedule"}],
            )
        session.commit()

    def count() -> list[str]:
        with counted_statements(db_engine) as statements:
            assert client.get("/autopilot").status_code == 200
        return statements

    grow(0, 1)
    few = count()
    grow(1, 19)
    many = count()
    assert len(few) == len(many), "\n".join(many)
    queries = [s for s in many if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(queries) <= 9, "\n".join(queries)
