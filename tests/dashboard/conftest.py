"""Dashboard fixtures: logging in through the real form, test data, counted queries, and for
browser tests a real uvicorn server on a fresh database driven by Debian's chromium.

Browser tests use Playwright with ``executable_path=/usr/bin/chromium`` (``scripts/test``
installs the package); never a downloaded browser. Without chromium they skip loudly, and
fail under ``CI=true``. Every browser test fails on a console error or an uncaught page error.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.dashboard import briefing
from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory
from runhq.platforms import service as platforms
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from runhq.web.app import create_app
from tests.conftest import (
    PASSWORD,
    Team,
    make_runtime,
    make_settings,
    make_team,
    service_unavailable,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
_CARD_RE = re.compile(
    r'<article[^>]*data-card="([a-z_]+)" data-state="([a-z]+)"[^>]*>(.*?)</article>', re.S
)


@pytest.fixture(autouse=True)
def _fresh_mrr_cache() -> Iterator[None]:
    briefing._mrr_cache.clear()
    yield
    briefing._mrr_cache.clear()


# -- HTML helpers -------------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def cards_of(html: str) -> dict[str, tuple[str, str]]:
    """The Briefing Room's cards: key → (state, inner HTML)."""
    return {key: (state, body) for key, state, body in _CARD_RE.findall(html)}


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """Log in through the real form (GET for the token, POST); returns the POST's answer."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )


@pytest.fixture
def make_client(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session], db_engine: Engine
) -> Iterator[Callable[..., TestClient]]:
    """A TestClient on the rolled-back test database, with settings overridden."""
    opened: list[TestClient] = []

    def make(base_url: str = "http://testserver", **overrides: Any) -> TestClient:
        settings = make_settings(tmp_path, database_url, **overrides)
        app = create_app(make_runtime(settings, sessions, db_engine), background=False)
        client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


# -- data ---------------------------------------------------------------------------------------


def add_run(
    session: Session,
    team: Team,
    registry: Registry,
    run_type: str = "PLATFORM_STATUS_REVIEW",
    *,
    status: RunStatus = RunStatus.completed,
    ago: timedelta = timedelta(hours=1),
    platform_key: str | None = None,
) -> Run:
    """A finished run recorded as history (no execution)."""
    return runs.import_run_record(
        session,
        team.workspace_id,
        registry,
        run_type=run_type,
        status=status,
        created_at=clock.now() - ago,
        requested_via="test",
        platform_key=platform_key,
        executive_summary=None if status == RunStatus.failed else f"{run_type} went fine.",
        error="model provider failed: HTTP 503" if status == RunStatus.failed else None,
        actual_cost=0.01,
        duration_ms=1200,
        model_used="offline",
    )


def add_platform(session: Session, admin: Actor, key: str, results: list[bool]) -> None:
    """A watched platform with one stored health check per result (True: up)."""
    platform = platforms.create_platform(
        session, admin, key=key, name=key.title(), health_urls=[f"http://127.0.0.1:9/{key}"]
    )
    for ok in results:
        outcome = {
            "ok": ok,
            "status_code": 200 if ok else 503,
            "latency_ms": 12,
            "error": None if ok else "HTTP 503 (expected 200)",
        }
        platforms.record_check(session, platform, [(platform.health_urls[0], outcome)])


def run_daily_brief(runtime: Runtime, session: Session, team: Team) -> Run:
    """A real DAILY_EXECUTIVE_BRIEF, executed by the engine (offline provider)."""
    run, _ = runs.create_run(
        session, team.operator, runtime.registry, run_type=briefing.BRIEF_RUN_TYPE
    )
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.completed
    session.refresh(run)
    return run


# -- a real server --------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    sessions: sessionmaker[Session]
    team: Team
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


@pytest.fixture
def start_server(tmp_path: Path, fresh_database_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Start uvicorn in a thread on a free port, on a fresh migrated database holding a team
    (committed: the server's threads must see it). Call once per test, with setting overrides."""
    started: list[tuple[LiveServer, Engine]] = []

    def start(**overrides: Any) -> LiveServer:
        assert not started, "one server per test"
        settings = make_settings(tmp_path / "data", fresh_database_url, **overrides)
        engine = build_engine(fresh_database_url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        runtime = make_runtime(settings, sessions, engine)
        with sessions() as session:
            team = make_team(session, name=f"live-{uuid.uuid4().hex[:6]}")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(runtime, background=False), log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live-uvicorn"
        )
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the test server did not start")
            time.sleep(0.02)
        live = LiveServer(f"http://127.0.0.1:{port}", runtime, sessions, team, server, thread)
        started.append((live, engine))
        return live

    yield start
    for live, engine in started:
        live.stop()
        engine.dispose()


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        service_unavailable(
            "chromium",
            f"{CHROMIUM} is missing: scripts/test installs Debian's package "
            "(apt-get install chromium)",
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_unavailable("playwright", f"{exc}: run scripts/bootstrap (dev extra)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    chromium = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield chromium
    chromium.close()


@dataclass
class Console:
    """What the page said on its console; a test may allow expected errors by pattern."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def open_page(browser: Browser, console: Console) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (own cookies) on ``server``; fails the test on
    any console error or page error."""
    contexts = []

    def open_(server: LiveServer, *, width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(
            base_url=server.url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda msg: (
                console.errors.append(f"console.{msg.type}: {msg.text} @ {msg.location}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: console.errors.append(f"page error: {exc}"))
        return page

    yield open_
    for context in contexts:
        context.close()
    unexpected = console.unexpected()
    if unexpected:
        pytest.fail("browser console errors:\n" + "\n".join(unexpected))


OpenPage = Callable[..., "Page"]
StartServer = Callable[..., LiveServer]


def expect_() -> Any:
    """Playwright's ``expect``, imported where a browser test runs (Playwright may be absent:
    those tests then skip)."""
    from playwright.sync_api import expect

    return expect


def log_in_as(page: Page, server: LiveServer, role: Role) -> None:
    """Log in through the form as the server's team member of ``role``; lands on /."""
    browser_log_in(page, server.team.emails[role])
    expect_()(page).to_have_url(server.url + "/")


def browser_log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label(re.compile("e-mail|email", re.I)).fill(email)
    page.get_by_label(re.compile("mot de passe|password", re.I)).fill(password)
    page.locator("form[action='/login'] button[type=submit]").click()


# A figure shown as NaN or None, as a word: a random CSRF token in the page may contain the
# letters (``…ZNaNH2…``) without being one.
_BLANK_FIGURE = re.compile(r"\b(NaN|None)\b")


def assert_no_blank_figures(html: str) -> None:
    found = _BLANK_FIGURE.search(html)
    assert found is None, html[max(0, found.start() - 80) : found.end() + 80] if found else ""
