"""The logs and costs pages in a real browser (Debian's chromium, Playwright, a real uvicorn
server): filtering logs by level, the live tail (a line written while the page is open shows
up without a reload; pause and resume), the month picker, and no console errors in French and
English, from 390 px to wide screens."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from runhq import clock
from runhq.auth.models import Role
from runhq.costs import service as costs
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from tests.dashboard.conftest import (
    LiveServer,
    OpenPage,
    StartServer,
    expect_,
    log_in_as,
)

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.slow


def _write_log(
    server: LiveServer, message: str, level: LogLevel = LogLevel.info, **kw: Any
) -> None:
    """A line written through the service into the server's database, committed."""
    with server.sessions() as session:
        logs.create_log(
            session, message=message, level=level, workspace_id=server.team.workspace_id, **kw
        )
        session.commit()


def _seed_logs(server: LiveServer) -> None:
    for i in range(6):
        _write_log(server, f"info.event.{i}", source=LogSource.system)
    _write_log(server, "autopilot.skip_duplicate", LogLevel.warn, source=LogSource.autopilot)
    _write_log(
        server,
        "run.failed",
        LogLevel.error,
        source=LogSource.executive_run,
        metadata={"error_message": "HTTP 503", "run_type": "CODE_REVIEW"},
    )
    _write_log(server, "platform.incident_opened", LogLevel.error, source=LogSource.health)


def _record(server: LiveServer, run_type: str, cost: float, at: datetime) -> None:
    with server.sessions() as session:
        runs.import_run_record(
            session,
            server.team.workspace_id,
            server.runtime.registry,
            run_type=run_type,
            status=RunStatus.completed,
            created_at=at,
            requested_via="test",
            actual_cost=cost,
            duration_ms=1000,
        )
        session.commit()


def _seed_costs(server: LiveServer) -> tuple[str, str]:
    """Runs this month and last month, a budget; returns (this month, last month)."""
    tz = server.runtime.settings.timezone
    month, start, _ = costs.month_bounds(None, tz)
    middle = start + (clock.now() - start) / 2  # inside this month whatever the day
    _record(server, "SEO_AUDIT", 0.25, middle)
    _record(server, "CODE_REVIEW", 1.5, middle)
    previous_start = (start - timedelta(days=1)).replace(day=1)
    previous, _, _ = costs.month_bounds(previous_start.strftime("%Y-%m"), tz)
    _record(server, "FINANCIAL_REPORT", 4.0, previous_start + timedelta(days=2))
    with server.sessions() as session:
        costs.set_budget(session, server.team.workspace_id, scope="global", monthly_limit_eur=10.0)
        session.commit()
    return month, previous


def test_filter_logs_by_level(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    _seed_logs(server)
    page = open_page(server)
    log_in_as(page, server, Role.viewer)
    page.goto("/logs")
    lines = page.locator("#log-lines > li")
    expect(lines).to_have_count(9)
    page.get_by_label("Niveau").select_option("error")
    page.get_by_role("button", name="Filtrer").click()
    expect(page).to_have_url(re.compile(r"/logs\?level=error"))
    expect(lines).to_have_count(2)
    assert set(lines.evaluate_all("els => els.map(e => e.dataset.level)")) == {"error"}
    expect(page.get_by_label("Niveau")).to_have_value("error")
    # Metadata unfolds (keyboard: the summary is focusable).
    failed = page.locator("#log-lines > li", has_text="run.failed")
    summary = failed.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(failed.locator("pre")).to_be_visible()
    expect(failed.locator("pre")).to_contain_text('"error_message": "HTTP 503"')
    # Both filters, then clear them.
    page.get_by_label("Source").select_option("health")
    page.get_by_role("button", name="Filtrer").click()
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("platform.incident_opened")
    page.get_by_role("link", name="Effacer les filtres").click()
    expect(lines).to_have_count(9)


def test_live_tail_shows_new_lines_without_reload(
    start_server: StartServer, open_page: OpenPage
) -> None:
    expect = expect_()
    server = start_server()
    _seed_logs(server)
    page = open_page(server)
    log_in_as(page, server, Role.owner)
    page.goto("/logs?level=error")
    lines = page.locator("#log-lines > li")
    expect(lines).to_have_count(2)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("[data-tail-state]")).to_have_text("En direct")
    # An info line is filtered out; the error line comes on top, without a reload.
    _write_log(server, "live.info", source=LogSource.system)
    _write_log(server, "live.error.1", LogLevel.error, source=LogSource.system)
    expect(lines).to_have_count(3, timeout=10_000)
    expect(lines.first).to_contain_text("live.error.1")
    expect(page.locator("#log-lines")).not_to_contain_text("live.info")
    expect(page.locator("#logs-tail-news")).to_have_text("1 nouvelle ligne")
    assert page.evaluate("window.__sameDocument") is True
    # Paused: nothing comes; resumed: it does.
    toggle = page.locator("[data-tail-toggle]")
    expect(toggle).to_have_text("Mettre en pause")
    toggle.click()
    expect(toggle).to_have_text("Reprendre le direct")
    expect(page.locator("[data-tail-state]")).to_have_text("En pause")
    _write_log(server, "live.error.2", LogLevel.error, source=LogSource.system)
    page.wait_for_timeout(4500)  # two polls' worth
    expect(lines).to_have_count(3)
    toggle.click()
    expect(lines).to_have_count(4, timeout=10_000)
    expect(lines.first).to_contain_text("live.error.2")
    # Each line once, however many polls went by.
    ids = lines.evaluate_all("els => els.map(e => e.id)")
    assert len(ids) == len(set(ids))
    assert page.evaluate("window.__sameDocument") is True


def test_costs_month_picker(start_server: StartServer, open_page: OpenPage) -> None:
    expect = expect_()
    server = start_server()
    month, previous = _seed_costs(server)
    page = open_page(server)
    log_in_as(page, server, Role.owner)
    page.get_by_role("navigation", name="Navigation principale").get_by_role(
        "link", name="Coûts IA"
    ).click()
    expect(page).to_have_url(server.url + "/costs")
    expect(page.get_by_role("heading", level=1)).to_have_text("Coûts IA")
    expect(page.locator('[data-value="total"]').first).to_have_text("1,75\u00a0€")
    expect(page.locator("[data-lines=type] > .cost-bar")).to_have_count(2)
    meter = page.locator('[data-scope="global"] meter')
    expect(meter).to_have_attribute("value", "1.75")
    # The bar's tooltip: runs and average cost.
    bar = page.locator('.cost-bar[data-key="CODE_REVIEW"] .cost-bar__track')
    bar.hover()
    expect(bar.locator(".tip")).to_be_visible()
    expect(bar.locator(".tip")).to_contain_text("1 run · coût moyen 1,50\u00a0€")
    page.locator('[data-month-link="previous"]').click()
    expect(page).to_have_url(server.url + f"/costs?month={previous}")
    expect(page.locator('[data-value="total"]').first).to_have_text("4,00\u00a0€")
    expect(page.locator("[data-lines=type] > .cost-bar")).to_have_count(1)
    page.locator('[data-month-link="next"]').click()
    expect(page).to_have_url(server.url + f"/costs?month={month}")
    expect(page.locator('[data-value="total"]').first).to_have_text("1,75\u00a0€")
    # The form: any month (a future one is empty, not an error).
    page.get_by_label("Mois", exact=True).fill("2099-01")
    page.get_by_role("button", name="Afficher").click()
    expect(page).to_have_url(server.url + "/costs?month=2099-01")
    expect(page.locator('[data-value="total"]').first).to_have_text("0,00\u00a0€")
    expect(page.locator('[data-value="average"]')).to_have_text("—")


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_costs_and_logs_have_no_console_errors(
    start_server: StartServer, open_page: OpenPage, lang: str, width: int, height: int
) -> None:
    expect = expect_()
    server = start_server()
    _seed_logs(server)
    _seed_costs(server)
    page = open_page(server, width=width, height=height)
    if lang == "en":
        page.goto("/login")
        page.get_by_role("button", name=re.compile("English")).click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
    log_in_as(page, server, Role.owner)
    for path, heading in (
        ("/costs", {"fr": "Coûts IA", "en": "AI costs"}),
        ("/logs", {"fr": "Journaux", "en": "Logs"}),
        ("/logs?level=warn&source=autopilot", {"fr": "Journaux", "en": "Logs"}),
    ):
        page.goto(path)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading[lang])
        assert page.evaluate("typeof htmx") == "object"
        # Nothing wider than the screen (the 390 px phone included).
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        if path.startswith("/logs"):
            page.wait_for_timeout(2500)  # at least one poll of the live tail
            expect(page.locator("[data-tail-toggle]")).to_be_visible()
