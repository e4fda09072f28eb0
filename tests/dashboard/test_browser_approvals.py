"""Approvals, Autopilot and Trust in a real browser (Debian's chromium, Playwright, uvicorn):
an owner approves a planned DEPLOY_TO_PRODUCTION, a viewer cannot (no button, forged POST
refused), the autopilot switch toggles, and no page has console errors, in French and
English, at 1280 px and 390 px."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from runhq.auth.models import Role
from runhq.logs import service as logs
from runhq.logs.schemas import LogSource
from runhq.platforms import service as platforms
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.scheduler import autopilot
from runhq.scheduler import service as schedules
from tests.dashboard.conftest import (
    LiveServer,
    OpenPage,
    StartServer,
    add_run,
    browser_log_in,
    expect_,
)

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.slow


def _planned_deploy(server: LiveServer) -> Run:
    """A DEPLOY_TO_PRODUCTION whose plan phase ran (offline provider): it waits for an owner."""
    team = server.team
    with server.sessions() as session:
        platforms.create_platform(
            session,
            team.admin,
            key="app",
            name="App",
            deploy_target={
                "type": "webhook",
                "url": "https://hooks.example.com/deploy",
                "secret_env": "RUNHQ_TEST_UNSET_SECRET",
            },
        )
        run, _ = runs.create_run(
            session,
            team.operator,
            server.runtime.registry,
            run_type="DEPLOY_TO_PRODUCTION",
            platform_key="app",
            params={"ref": "v1.4.0"},
        )
        session.commit()
        run_id = run.id
    assert server.runtime.engine.execute(run_id) == RunStatus.pending_approval
    return _run(server, run_id)


def _gated(server: LiveServer) -> Run:
    with server.sessions() as session:
        run, _ = runs.create_run(
            session, server.team.operator, server.runtime.registry, run_type="RELEASE_GATE_CHECK"
        )
        session.commit()
        return _run(server, run.id)


def _run(server: LiveServer, run_id: object) -> Run:
    with server.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        session.expunge(run)
        return run


def _decisions(server: LiveServer, run: Run) -> list[tuple[str, str | None]]:
    with server.sessions() as session:
        fresh = session.get(Run, run.id)
        assert fresh is not None
        return [(a.decision, a.reason) for a in runs.list_approvals(session, fresh)]


def _seed_everything(server: LiveServer) -> None:
    """Something on every page: pending runs, schedules, a journal, a security scan."""
    _planned_deploy(server)
    team, registry = server.team, server.runtime.registry
    with server.sessions() as session:
        schedules.create_schedule(
            session,
            team.admin,
            registry,
            job_key="daily-brief",
            run_type="DAILY_EXECUTIVE_BRIEF",
            cron="30 7 * * 1-5",
        )
        schedules.create_schedule(
            session,
            team.admin,
            registry,
            job_key="tokyo-seo",
            run_type="SEO_AUDIT",
            cron="0 9 * * *",
            timezone="Asia/Tokyo",
            enabled=False,
        )
        logs.create_log(
            session,
            message=autopilot.DECISION,
            source=LogSource.autopilot,
            workspace_id=team.workspace_id,
            metadata={
                "mode": "deterministic",
                "jobs_to_run": ["daily-brief", "ghost"],
                "accepted": ["daily-brief"],
                "rejected": [{"job_key": "ghost", "reason": "unknown job: no such schedule"}],
                "run_ids": [],
                "awaiting_approval": [],
                "reasoning": "Deterministic policy (no model configured): daily-brief is due.",
                "paris_hour": 8,
                "next_check_in_minutes": 5,
                "error": None,
            },
        )
        add_run(session, team, registry, "SECURITY_AUDIT_RLS", ago=timedelta(days=2))
        session.commit()


def test_an_owner_approves_a_deploy_and_it_leaves_the_list(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    deploy = _planned_deploy(server)
    _gated(server)
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    badge = page.locator('[data-badge="pending_approvals"]')
    expect(badge).to_have_text("2")
    page.get_by_role("navigation").get_by_role("link", name=re.compile("Approbations")).click()
    expect(page).to_have_url(server.url + "/approvals")

    card = page.locator(f'article[data-run-id="{deploy.id}"]')
    expect(card.get_by_role("heading", level=2)).to_contain_text("Déploiement en production")
    expect(card.locator("[data-plan-hash]")).to_have_text(deploy.plan_hash or "?")
    expect(card).to_contain_text("v1.4.0")
    approve = card.get_by_role("button", name=re.compile("^Approuver"))
    reason = card.get_by_label(re.compile("Raison de votre décision"))

    # The browser itself refuses an empty reason: nothing is sent.
    approve.click()
    assert reason.evaluate("el => el.validity.valueMissing")
    expect(page).to_have_url(server.url + "/approvals")
    assert _decisions(server, deploy) == []

    reason.fill("Release 1.4, gate passed this morning")
    approve.click()
    expect(page).to_have_url(re.compile(r"/approvals\?done=approved"))
    expect(page.get_by_role("status")).to_contain_text("approuvé")
    expect(page.locator(f'article[data-run-id="{deploy.id}"]')).to_have_count(0)
    expect(page.locator("article.approval")).to_have_count(1)
    expect(badge).to_have_text("1")
    after = _run(server, deploy.id)
    assert (after.status, after.phase) == ("queued", "act")
    assert _decisions(server, deploy) == [("approved", "Release 1.4, gate passed this morning")]


def test_a_viewer_cannot_approve(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    deploy = _planned_deploy(server)
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.viewer])
    expect(page).to_have_url(server.url + "/")
    page.goto("/approvals")
    card = page.locator(f'article[data-run-id="{deploy.id}"]')
    expect(card).to_contain_text("Déploiement en production")
    expect(page.get_by_role("button", name=re.compile("Approuver|Rejeter"))).to_have_count(0)
    expect(card).to_contain_text("Un propriétaire doit décider de ce run.")
    # A forged POST with the viewer's own valid token: the service refuses it.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    for decision in ("approve", "reject"):
        response = page.request.post(
            f"{server.url}/approvals/{deploy.id}/{decision}",
            form={"reason": "let me", "plan_hash": deploy.plan_hash or "", "csrf_token": token},
            max_redirects=0,
        )
        assert response.status == 403, decision
        assert "Action non autorisée pour votre rôle" in response.text()
    after = _run(server, deploy.id)
    assert (after.status, after.phase) == ("pending_approval", "review")
    assert _decisions(server, deploy) == []


def test_the_autopilot_switch_toggles(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.admin])
    expect(page).to_have_url(server.url + "/")
    page.goto("/autopilot")
    switch = page.get_by_role("switch", name="Autopilot")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(page).to_have_url(server.url + "/autopilot?done=on")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("status")).to_contain_text("Autopilot activé")
    with server.sessions() as session:
        assert autopilot.get_autopilot(session, server.team.workspace_id, 5).enabled
    # From the keyboard too.
    switch.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(server.url + "/autopilot?done=off")
    expect(switch).to_have_attribute("aria-checked", "false")
    with server.sessions() as session:
        assert not autopilot.get_autopilot(session, server.team.workspace_id, 5).enabled


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_the_pages_have_no_console_errors_in_both_languages(
    start_server: StartServer, open_page: OpenPage, width: int, height: int
) -> None:
    expect = expect_()
    server = start_server()
    _seed_everything(server)
    page = open_page(server, width=width, height=height)
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    headings = {
        "fr": {"/approvals": "Approbations", "/autopilot": "Autopilot", "/trust": "Confiance"},
        "en": {"/approvals": "Approvals", "/autopilot": "Autopilot", "/trust": "Trust"},
    }
    for lang, switch_to in (("fr", "English"), ("en", "français")):
        for path, heading in headings[lang].items():
            page.goto(path)
            expect(page.locator("html")).to_have_attribute("lang", lang)
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            assert page.evaluate("typeof htmx") == "object", path
            # The page's own stylesheet loaded (CSP allows it): nothing wider than the screen.
            assert page.evaluate("document.styleSheets.length") >= 2, path
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        if lang == "fr":
            page.get_by_role("button", name=re.compile(switch_to)).click()
            expect(page.locator("html")).to_have_attribute("lang", "en")
    # Keyboard: the reason field of the pending run is reachable and labelled.
    page.goto("/approvals")
    reason = page.get_by_label(re.compile("Reason for your decision"))
    reason.focus()
    expect(reason).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=re.compile("^Approve"))).to_be_focused()
