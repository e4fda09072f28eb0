"""Rendering: the Jinja2 environment, what every template receives, the sidebar, and the
``Page`` a route gets to render with.

A page route is::

    @router.get("/things")
    def things(page: PageDep) -> HTMLResponse:
        rows = things_service.list_things(page.session, page.actor)
        return page.render("things.html", {"rows": rows})

``PageDep`` redirects visitors who are not logged in to ``/login`` (HTMX requests get
``HX-Redirect``). Templates extend ``base.html`` and use ``t('key')`` / ``tn('key', n)`` for
text, ``fmt`` for numbers, money and dates, ``can('action')`` to show controls, and
``csrf_field()`` in every form that posts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.schemas import Actor
from runhq.dashboard.session import CSRF_FIELD, BrowserDep, BrowserSession
from runhq.i18n import Translator
from runhq.runs import service as runs
from runhq.runtime import Runtime
from runhq.web.deps import RuntimeDep, SessionDep

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

# What the dashboard's pages may load: only runhq's own files (htmx is vendored).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages show workspace data: no shared cache keeps them, Back after logout refetches.
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    key: str  # catalog key nav.<key>, and the icon name
    href: str
    badge: str | None = None  # key in the badges mapping


#: The sidebar, in order. A page that does not exist yet answers 404 until it is built.
NAV: tuple[NavItem, ...] = (
    NavItem("briefing", "/"),
    NavItem("runs", "/runs", badge="failures_24h"),
    NavItem("approvals", "/approvals", badge="pending_approvals"),
    NavItem("costs", "/costs"),
    NavItem("logs", "/logs"),
    NavItem("autopilot", "/autopilot"),
    NavItem("registry", "/registry"),
    NavItem("trust", "/trust"),
)


@lru_cache(maxsize=256)
def static_url(path: str) -> str:
    """``/static/<path>?v=<content hash>``: browsers may cache it for as long as it is that."""
    file = (STATIC_DIR / path).resolve()
    if not file.is_relative_to(STATIC_DIR.resolve()) or not file.is_file():
        raise FileNotFoundError(f"no static file {path!r} in {STATIC_DIR}")
    version = hashlib.sha256(file.read_bytes()).hexdigest()[:10]
    return f"/static/{path}?v={version}"


def _build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals["static"] = static_url
    env.globals["NAV"] = NAV
    return env


ENV = _build_environment()


def render_template(name: str, context: dict[str, Any]) -> str:
    return ENV.get_template(name).render(context)


def _badge_pending_approvals(session: Session, actor: Actor) -> int:
    return runs.count_pending_approval(session, actor.workspace_id)


def _badge_failures_24h(session: Session, actor: Actor) -> int:
    return runs.count_failed_since(session, actor.workspace_id, clock.now() - timedelta(hours=24))


#: Sidebar badges: one aggregate query each. A badge that fails is left out, not the page.
BADGES: dict[str, Callable[[Session, Actor], int]] = {
    "pending_approvals": _badge_pending_approvals,
    "failures_24h": _badge_failures_24h,
}


def sidebar_badges(session: Session, actor: Actor) -> dict[str, int | None]:
    """The counts the sidebar shows next to its links (None: could not be read)."""
    counts: dict[str, int | None] = {}
    for name, count in BADGES.items():
        try:
            with session.begin_nested():  # a failed query must not abort the page's reads
                counts[name] = count(session, actor)
        except Exception:
            logger.exception("sidebar badge %s failed", name)
            counts[name] = None
    return counts


def base_context(
    request: Request, browser: BrowserSession, tr: Translator, **extra: Any
) -> dict[str, Any]:
    """What every template can use."""
    token = browser.csrf_token

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    path = request.url.path
    return {
        "request_path": path + (f"?{request.url.query}" if request.url.query else ""),
        "current_path": path,
        "lang": tr.lang,
        "t": tr.t,
        "tn": tr.tn,
        "fmt": tr,
        "csrf_token": token,
        "csrf_field": csrf_field,
        "actor": browser.actor,
        "user_email": browser.email,
        "can": browser.can,
        "badges": {},
        **extra,
    }


def html_response(
    browser: BrowserSession | None,
    body: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    response = HTMLResponse(body, status, headers={**SECURITY_HEADERS, **(headers or {})})
    if browser is not None:
        browser.apply_cookies(response)
    return response


def render_page(
    request: Request,
    browser: BrowserSession,
    runtime: Runtime,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    session: Session | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A full page; with a logged-in visitor and a session, the sidebar shows its badges."""
    tr = Translator(browser.lang, runtime.settings.timezone)
    ctx = base_context(request, browser, tr, **(context or {}))
    if browser.actor is not None and session is not None:
        ctx["badges"] = sidebar_badges(session, browser.actor)
    return html_response(browser, render_template(template, ctx), status=status)


@dataclass
class Page:
    """A logged-in visit to a dashboard page: what a page route works with."""

    request: Request
    browser: BrowserSession
    runtime: Runtime
    session: Session
    actor: Actor
    tr: Translator = field(init=False)

    def __post_init__(self) -> None:
        self.tr = Translator(self.browser.lang, self.runtime.settings.timezone)

    def context(self, **extra: Any) -> dict[str, Any]:
        return base_context(self.request, self.browser, self.tr, **extra)

    def render(
        self, template: str, context: dict[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        """A full page (layout, sidebar with its badges)."""
        return render_page(
            self.request,
            self.browser,
            self.runtime,
            template,
            context,
            session=self.session,
            status=status,
        )

    def fragment(self, template: str, context: dict[str, Any] | None = None) -> Markup:
        """A partial rendered alone (an HTMX swap, a card)."""
        # Autoescaped by the environment: the rendered HTML is safe to embed as it is.
        return Markup(render_template(template, self.context(**(context or {}))))  # noqa: S704

    def partial(
        self, template: str, context: dict[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        """A partial as the whole response (HTMX requests)."""
        return html_response(self.browser, self.fragment(template, context), status=status)


def get_page(
    request: Request, browser: BrowserDep, runtime: RuntimeDep, session: SessionDep
) -> Page:
    return Page(request, browser, runtime, session, browser.require_actor())


PageDep = Annotated[Page, Depends(get_page)]
