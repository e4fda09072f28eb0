"""The dashboard in a real browser: Debian's chromium driven by Playwright against a real
uvicorn server. Every test here also fails on any console error or page error."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from runhq.auth.models import Role
from runhq.runs.models import RunStatus
from tests.dashboard.conftest import (
    Console,
    LiveServer,
    OpenPage,
    StartServer,
    add_platform,
    add_run,
    browser_log_in,
    expect_,
    run_daily_brief,
)
from tests.fakes.stripe_server import FakeStripe

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.slow


def _seed(server: LiveServer) -> None:
    """A workspace with history, two watched platforms and a real daily brief."""
    registry = server.runtime.registry
    with server.sessions() as session:
        for hours, run_type in enumerate(("CODE_REVIEW", "FINANCIAL_REPORT", "SEO_AUDIT"), 2):
            add_run(session, server.team, registry, run_type, ago=timedelta(hours=hours))
        add_run(session, server.team, registry, "SEO_AUDIT", status=RunStatus.failed)
        add_platform(session, server.team.admin, "app", [True, True, True])
        add_platform(session, server.team.admin, "api", [True, False])
        session.commit()
        run_daily_brief(server.runtime, session, server.team)


def test_log_in_with_a_bad_then_a_good_password(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    browser_log_in(page, server.team.emails[Role.owner], "not-the-password")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Adresse e-mail ou mot de passe incorrect.")
    expect(page.get_by_label("Adresse e-mail")).to_have_value(server.team.emails[Role.owner])
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Briefing Room")
    expect(page.locator("[data-card]")).to_have_count(5)


def test_switch_language_and_back(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    page.goto("/login")
    # On the login page already (before any session).
    page.get_by_role("button", name=re.compile("English")).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in to the HQ")
    browser_log_in(page, server.team.emails[Role.viewer])
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Approvals")).to_be_visible()
    expect(page.locator("[data-card=agents] h2")).to_have_text("Active agents")
    page.get_by_role("button", name=re.compile("français", re.I)).click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page).to_have_url(server.url + "/")
    expect(nav.get_by_role("link", name="Approbations")).to_be_visible()
    expect(page.locator("[data-card=agents] h2")).to_have_text("Agents actifs")
    page.get_by_role("button", name=re.compile("English")).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_logout(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.operator])
    expect(page).to_have_url(server.url + "/")
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    assert not [c for c in page.context.cookies() if c["name"] == "runhq_session"]


def test_forged_posts_without_the_csrf_token_get_403(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    # The browser's own cookies, no token: what a forged form would send.
    for path, form in (("/logout", {}), ("/lang", {"lang": "en", "next": "/"})):
        response = page.request.post(server.url + path, form=form, max_redirects=0)
        assert response.status == 403, path
        assert "Formulaire expiré" in response.text()
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Briefing Room")


def test_htmx_requests_carry_the_csrf_token(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    with page.expect_request(lambda r: r.url.endswith("/lang")) as sent:
        page.evaluate("htmx.ajax('POST', '/lang', {values: {lang: 'en', next: '/'}, swap: 'none'})")
    assert sent.value.headers["x-csrf-token"] == token
    page.wait_for_load_state("networkidle")
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_a_failed_htmx_request_shows_a_toast(
    start_server: StartServer, open_page: OpenPage, console: Console
) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    # Expected here: the browser and htmx report the 404 on the console.
    console.allow(r"404")
    page.evaluate("htmx.ajax('GET', '/no-such-fragment', {swap: 'none'})")
    toast = page.locator("#toasts [role=alert]")
    expect(toast).to_contain_text("Page introuvable")
    toast.get_by_role("button", name="Fermer").click()
    expect(toast).to_have_count(0)


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_the_briefing_room_has_no_console_errors(
    start_server: StartServer, open_page: OpenPage, width: int, height: int
) -> None:
    expect = expect_()
    server = start_server()
    _seed(server)
    page = open_page(server, width=width, height=height)
    browser_log_in(page, server.team.emails[Role.owner])
    expect(page).to_have_url(server.url + "/")
    states = page.locator("[data-card]").evaluate_all(
        "cards => cards.map(c => [c.dataset.card, c.dataset.state])"
    )
    assert dict(states) == {
        "mrr": "unavailable",
        "agents": "ok",
        "uptime": "ok",
        "last_run": "ok",
        "brief": "ok",
    }
    expect(page.locator("[data-card=uptime]")).to_contain_text("75,00")
    expect(page.locator("[data-card=brief] summary").first).to_be_visible()
    expect(page.locator('[data-badge="failures_24h"]')).to_have_text("1")
    assert page.evaluate("typeof htmx") == "object"
    # Nothing wider than the screen (the 390 px phone included).
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Keyboard: the first Tab reaches the skip link, which leads to the content.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    # The "Moyenne" badge explains itself on focus.
    badge = page.locator("[data-card=uptime] .badge.has-tip")
    badge.focus()
    expect(page.locator("#tip-uptime")).to_be_visible()


def test_failing_stripe_shows_a_dash_and_the_other_cards_render(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    with FakeStripe() as stripe:
        stripe.fail(500)
        server = start_server(stripe_api_key=stripe.api_key, stripe_base_url=stripe.base_url)
        _seed(server)
        page = open_page(server)
        browser_log_in(page, server.team.emails[Role.owner])
        expect(page).to_have_url(server.url + "/")
        assert stripe.requests, "the page asked Stripe"
    mrr = page.locator("[data-card=mrr]")
    expect(mrr).to_have_attribute("data-state", "unavailable")
    expect(mrr.locator(".kpi__value .has-tip")).to_have_text("—")
    mrr.locator(".has-tip").hover()
    expect(page.locator("#tip-mrr")).to_be_visible()
    expect(page.locator("#tip-mrr")).to_contain_text("Service indisponible")
    for key in ("agents", "uptime", "last_run", "brief"):
        expect(page.locator(f"[data-card={key}]")).to_have_attribute("data-state", "ok")
    expect(page.get_by_text("Impossible de charger ce module")).to_have_count(0)
