"""Monitoring, the run page and the registry in a real browser (Debian's chromium driven by
Playwright against a real uvicorn server). Runs execute for real: the in-process executor
(``LocalExecutor``, the embedded engine with the offline provider) is started on the
server's runtime when a test needs it. Every test also fails on any console or page error."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from runhq.auth.models import Role
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.workers import build_executor
from tests.dashboard.conftest import (
    Console,
    LiveServer,
    OpenPage,
    StartServer,
    add_run,
    expect_,
    log_in_as,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

RUN_URL = re.compile(r"/runs/([0-9a-f-]{36})$")


@contextmanager
def executing(server: LiveServer) -> Iterator[None]:
    """The server's in-process executor, as ``runhq serve`` runs it, for this block."""
    executor = build_executor(server.runtime)
    server.runtime.executor = executor
    executor.start()
    try:
        yield
    finally:
        server.runtime.executor = None
        executor.stop()


def _mark(page: Page) -> None:
    """Leave a mark in the page's window: it survives anything but a reload."""
    page.evaluate("window.__notReloaded = true")


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def _run_id(page: Page) -> uuid.UUID:
    match = RUN_URL.search(page.url)
    assert match, page.url
    return uuid.UUID(match.group(1))


def test_run_now_from_the_registry_and_watch_it_complete(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    log_in_as(page, server, Role.operator)
    page.goto("/registry")
    row = page.locator("#type-PLATFORM_STATUS_REVIEW")
    row.get_by_role("button", name=re.compile("Lancer")).click()
    expect(page).to_have_url(RUN_URL)
    status = page.locator("#run-status")
    # Nothing executes yet: the run waits in the queue, and the page says so.
    expect(status).to_have_attribute("data-status", "queued")
    expect(status).to_have_text("En file d'attente")
    _mark(page)
    with executing(server):
        page.wait_for_selector("#run-status[data-status=completed]", timeout=15_000)
    expect(status).to_have_text("Terminé")
    assert _not_reloaded(page), "the page reloaded"
    expect(page.locator(".run-report .brief__summary")).to_be_visible()
    expect(page.locator('[data-log="run.completed"]')).to_have_count(1)
    assert page.locator("#run-detail").get_attribute("hx-trigger") is None  # polling stopped
    with server.sessions() as session:
        run = runs.get_run(session, server.team.owner, _run_id(page))
        assert run.status == RunStatus.completed
        assert run.requested_via == "dashboard"


def test_the_list_updates_statuses_without_reloading(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    with server.sessions() as session:
        add_run(session, server.team, server.runtime.registry, "SEO_AUDIT")
        run, _ = runs.create_run(
            session, server.team.operator, server.runtime.registry, run_type="CODE_REVIEW"
        )
        session.commit()
    page = open_page(server)
    log_in_as(page, server, Role.viewer)
    page.goto("/runs")
    status = page.locator(f"#run-{run.id}-status")
    expect(status).to_have_text("En file d'attente")
    # Open the row (keyboard): the refresh must not close it.
    page.locator(f"#run-{run.id} summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#run-{run.id} details")).to_have_attribute("open", "")
    _mark(page)
    with executing(server):
        page.wait_for_selector(f"#run-{run.id}-status[data-status=completed]", timeout=15_000)
    expect(status).to_have_text("Terminé")
    assert _not_reloaded(page)
    expect(page.locator(f"#run-{run.id} details")).to_have_attribute("open", "")
    expect(page.locator(f"#run-{run.id}-body .prose")).to_be_visible()
    expect(page.locator("#runs-poller")).not_to_have_attribute("hx-trigger", re.compile("."))


def test_retry_a_failed_run_from_monitoring(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    with server.sessions() as session:
        failed = add_run(
            session,
            server.team,
            server.runtime.registry,
            "PLATFORM_STATUS_REVIEW",
            status=RunStatus.failed,
            ago=timedelta(hours=2),
        )
        session.commit()
    page = open_page(server)
    log_in_as(page, server, Role.operator)
    page.goto("/runs")
    expect(page.locator("[data-banner=failures]")).to_contain_text("1 run a échoué")
    with executing(server):
        page.locator(f"#run-{failed.id}").get_by_role("button", name=re.compile("Relancer")).click()
        expect(page).to_have_url(RUN_URL)
        new_id = _run_id(page)
        assert new_id != failed.id
        expect(page.locator(f'a[href="/runs/{failed.id}"]')).to_be_visible()
        page.wait_for_selector("#run-status[data-status=completed]", timeout=15_000)
    page.goto("/runs")
    first = page.locator(".run-row").first
    expect(first).to_have_attribute("id", f"run-{new_id}")
    expect(first).to_contain_text("Tentative 2")
    expect(page.locator(f"#run-{new_id}-status")).to_have_text("Terminé")


def test_the_failures_filter_says_everything_works(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    with server.sessions() as session:
        add_run(session, server.team, server.runtime.registry, "SEO_AUDIT")
        session.commit()
    page = open_page(server)
    log_in_as(page, server, Role.viewer)
    page.goto("/runs")
    expect(page.locator(".run-row")).to_have_count(1)
    page.get_by_role("link", name="Échecs", exact=True).click()
    empty = page.locator("[data-empty=failures]")
    expect(empty).to_contain_text("Aucun échec — tout fonctionne")
    expect(empty.locator("svg")).to_have_count(1)
    # The filter form too, enhanced by HTMX: the results change, the address follows.
    page.goto("/runs")
    _mark(page)
    page.get_by_label("Statut").select_option("failed")
    expect(page.locator("[data-empty=failures]")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/runs\?status=failed"))
    assert _not_reloaded(page)
    page.get_by_label("Statut").select_option("")
    expect(page.locator(".run-row")).to_have_count(1)


def test_a_gated_run_asks_for_confirmation(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    log_in_as(page, server, Role.operator)
    page.goto("/registry")
    opener = page.locator("#type-RELEASE_GATE_CHECK [data-confirm]")
    dialog = page.locator("#confirm-RELEASE_GATE_CHECK")
    opener.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("attendra l'approbation d'un propriétaire")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    opener.click()
    dialog.get_by_role("button", name="Annuler").click()
    expect(dialog).to_be_hidden()
    with server.sessions() as session:
        assert runs.list_runs(session, server.team.owner)[0] == []
    opener.click()
    dialog.get_by_role("button", name="Confirmer et lancer").click()
    expect(page).to_have_url(RUN_URL)
    expect(page.locator("#run-status")).to_have_text("En attente d'approbation")


def test_a_refused_run_is_a_toast(
    start_server: StartServer, open_page: OpenPage, console: Console
) -> None:
    expect = expect_()
    server = start_server()
    page = open_page(server)
    log_in_as(page, server, Role.operator)
    page.goto("/registry")
    page.locator("#type-SEO_AUDIT").get_by_role("button", name=re.compile("Lancer")).click()
    expect(page).to_have_url(RUN_URL)
    console.allow(r"409")  # the browser reports the refused request on the console
    page.goto("/registry")
    page.locator("#type-SEO_AUDIT").get_by_role("button", name=re.compile("Lancer")).click()
    toast = page.locator("#toasts [role=alert]")
    expect(toast).to_contain_text("Un run identique est déjà actif")
    expect(page).to_have_url(server.url + "/registry")


def test_a_viewer_has_no_buttons_and_a_forged_post_is_refused(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    with server.sessions() as session:
        failed = add_run(
            session, server.team, server.runtime.registry, "SEO_AUDIT", status=RunStatus.failed
        )
        session.commit()
    page = open_page(server)
    log_in_as(page, server, Role.viewer)
    page.goto("/runs")
    expect(page.locator("[data-action=retry]")).to_have_count(0)
    page.goto("/registry")
    expect(page.locator("[data-action=run]")).to_have_count(0)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    for path in (f"/runs/{failed.id}/retry", "/registry/SEO_AUDIT/run"):
        response = page.request.post(server.url + path, form={"csrf_token": token}, max_redirects=0)
        assert response.status == 403, path
        assert "Action non autorisée" in response.text()


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_pages_have_no_console_errors(
    start_server: StartServer, open_page: OpenPage, width: int, height: int, lang: str
) -> None:
    expect = expect_()
    server = start_server()
    with server.sessions() as session:
        failed = add_run(
            session,
            server.team,
            server.runtime.registry,
            "CODE_REVIEW",
            status=RunStatus.failed,
            platform_key="app",
        )
        done = add_run(session, server.team, server.runtime.registry, "SEO_AUDIT")
        session.commit()
    page = open_page(server, width=width, height=height)
    log_in_as(page, server, Role.owner)
    if lang == "en":
        page.get_by_role("button", name=re.compile("English")).click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
    heading = {"fr": "Registre", "en": "Registry"}[lang]
    for path, title in (
        ("/runs", "Monitoring"),
        (f"/runs/{done.id}", None),
        ("/runs?status=failed&period=24h", "Monitoring"),
        ("/registry", heading),
        ("/registry/PRICING_CHANGE", None),
    ):
        page.goto(path)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        if title:
            expect(page.get_by_role("heading", level=1)).to_have_text(title)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
    # The rows open with the keyboard and show the error with its platform.
    page.goto("/runs")
    row = page.locator(f"#run-{failed.id}")
    row.locator("summary").focus()
    page.keyboard.press("Enter")
    error = {"fr": "Erreur sur la plateforme app", "en": "Error on platform app"}[lang]
    expect(row.locator(".run-row__error")).to_be_visible()
    expect(row.locator(".run-row__error")).to_contain_text(error)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
