"""The dashboard's pages (HTML, outside the OpenAPI schema): login, logout, language, and the
Briefing Room. Thin like the API routes: read the request, call services, render."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from runhq import clock
from runhq.auth import service as auth
from runhq.auth.schemas import Actor
from runhq.dashboard import briefing
from runhq.dashboard.i18n import LANG_COOKIE
from runhq.dashboard.pages import SECURITY_HEADERS, PageDep, render_page
from runhq.dashboard.session import (
    BrowserDep,
    check_csrf,
    clear_session_cookie,
    local_path_of,
    safe_next,
    set_session_cookie,
    submitted_csrf_token,
)
from runhq.db.session import transaction
from runhq.errors import InvalidInput, NotAuthenticated, PermissionDenied, TooManyLoginAttempts
from runhq.i18n import LANGS
from runhq.runtime import Runtime
from runhq.web.deps import RuntimeDep, SessionDep

router = APIRouter(include_in_schema=False)

LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303, headers=SECURITY_HEADERS)


def _after_login(next_path: str | None) -> str:
    """Where a login leads: ``next`` if it is a page of this site (not the login itself)."""
    target = safe_next(next_path)
    return "/" if urlsplit(target).path in ("/login", "/logout") else target


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, browser: BrowserDep, runtime: RuntimeDep, next: str | None = None
) -> Response:
    target = _after_login(next)
    if browser.actor is not None:
        return _redirect(target)
    return render_page(
        request, browser, runtime, "login.html", {"next": target, "email": "", "error": None}
    )


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    browser: BrowserDep,
    runtime: RuntimeDep,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    target = _after_login(next)
    error = None
    if not email.strip() or not password:
        error = "login.missing"
    else:
        try:
            actor = auth.log_in(
                session,
                email=email,
                password=password,
                address=auth.client_address(request),
                throttle=auth.get_login_throttle(runtime.settings),
            )
        except NotAuthenticated:
            error = "login.failed"  # the failure is kept: this answer commits
        except PermissionDenied:
            error = "login.no_workspace"
        except TooManyLoginAttempts as exc:
            error = "login.throttled"
            wait_minutes = -(-int(exc.details["retry_after_seconds"]) // 60)
    if error is not None:
        # The form again, with what went wrong (200: a form to correct, like any other).
        context = {"next": target, "email": email.strip(), "error": error, "wait_minutes": 0}
        if error == "login.throttled":
            context["wait_minutes"] = wait_minutes
            return render_page(request, browser, runtime, "login.html", context, status=429)
        return render_page(request, browser, runtime, "login.html", context)
    settings = runtime.settings
    token = auth.issue_token(
        session, actor, secret=settings.get_secret_key(), ttl_minutes=settings.session_ttl_minutes
    )
    response = _redirect(target)
    set_session_cookie(
        response, token, max_age=settings.session_ttl_minutes * 60, secure=browser.secure
    )
    return response


@router.post("/logout")
async def logout(request: Request, browser: BrowserDep, runtime: RuntimeDep) -> Response:
    # Logged in: a real state change, so the token is required. Already logged out (the
    # session expired): nothing to protect, the cookie is cleared all the same.
    if browser.actor is not None:
        browser.check_csrf(await submitted_csrf_token(request))
        form = await request.form()
        # The token in the cookie (and any copy of it) stops working, not only the cookie;
        # with ``everywhere``, every other session of the user too (the Trust page's button).
        everywhere = form.get("everywhere") == "1"
        await run_in_threadpool(_log_out, runtime, browser.actor, everywhere=everywhere)
    response = _redirect("/login")
    clear_session_cookie(response, secure=browser.secure)
    return response


def _log_out(runtime: Runtime, actor: Actor, *, everywhere: bool) -> None:
    with transaction(runtime.sessions) as session:
        if everywhere or actor.session is None:  # a cookie from before per-session logout
            auth.revoke_sessions(session, actor)
        else:
            auth.end_session(session, actor)


@router.post("/lang", dependencies=[Depends(check_csrf)])
def set_language(
    request: Request,
    browser: BrowserDep,
    lang: Annotated[str, Form()],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    if lang not in LANGS:
        raise InvalidInput(
            f"unknown language {lang!r}; choose one of {', '.join(LANGS)}",
            details={"field": "lang", "reason": "lang", "lang": lang[:20], "choices": list(LANGS)},
        )
    target = safe_next(next or local_path_of(request, request.headers.get("referer")))
    response = _redirect(target)
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=LANG_COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=browser.secure,
        path="/",
    )
    return response


@router.get("/", response_class=HTMLResponse)
def briefing_room(page: PageDep) -> HTMLResponse:
    # Stripe first: no database transaction is open while it answers.
    mrr = briefing.read_mrr(page.runtime.settings)
    cards = briefing.render_cards(page, mrr)
    return page.render("briefing.html", {"cards": cards, "now": clock.now()})


# Each page lives in its own module with its own router (see CONTRIBUTING.md).
from runhq.dashboard import (  # noqa: E402 - the pages import helpers defined above
    approvals_page,
    autopilot_page,
    costs_page,
    logs_page,
    registry_page,
    runs_page,
    trust_page,
)

for _page in (
    runs_page,
    approvals_page,
    costs_page,
    logs_page,
    autopilot_page,
    registry_page,
    trust_page,
):
    router.include_router(_page.router)
