"""The browser session: the login cookie, anti-forgery (CSRF) tokens and safe redirects.

**Session.** The cookie ``runhq_session`` holds the JWT that ``auth.service.issue_token``
issues — the same credential as the API's bearer token, with the lifetime
``RUNHQ_SESSION_TTL_MINUTES``. It is ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and
``Secure`` when the request came over https (uvicorn applies ``X-Forwarded-Proto`` from the
proxies it trusts, ``--forwarded-allow-ips``). Each request resolves it with
``auth.service.resolve_token``: a deactivated user or a removed membership is out at once.
API keys are refused in the cookie. Logging out deletes the cookie and ends this session
(``auth.service.end_session``): this cookie's JWT, and any copy of it, is refused from then on;
the user's other browsers go on. The Trust page's "log out everywhere" ends every JWT issued to
the user before (``auth.service.revoke_sessions``).

**CSRF.** Every state-changing dashboard request (POST) carries a token, in the form field
``csrf_token`` or the header ``X-CSRF-Token`` (``app.js`` adds it to HTMX requests from
``<meta name="csrf-token">``). The token is ``HMAC-SHA256(secret key, binding)``, where the
binding is the session token of a logged-in visitor, and otherwise a random nonce kept in the
``runhq_csrf`` cookie (the login form, the language switch before logging in). Nothing is
stored on the server; a token dies with its session. A missing or wrong token is a 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.dashboard.i18n import get_lang
from runhq.db.session import transaction
from runhq.errors import CsrfRejected, NotAuthenticated
from runhq.web.deps import RuntimeDep

SESSION_COOKIE = "runhq_session"
CSRF_COOKIE = "runhq_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: ``requested_via`` of what a person does through the dashboard.
VIA = "dashboard"

#: The least role each dashboard action needs, to hide the controls a role cannot use. Only a
#: display hint: the services check the role again (``auth.service.require_role``).
PERMISSIONS: dict[str, Role] = {
    "run": Role.operator,
    "retry": Role.operator,
    "cancel": Role.operator,
    "check_platform": Role.operator,
    "edit_plan": Role.admin,
    "manage_platforms": Role.admin,
    "manage_schedules": Role.admin,
    "switch_autopilot": Role.admin,
    "import_contacts": Role.admin,
    "approve": Role.owner,
    "reject": Role.owner,
    "set_budget": Role.owner,
    "purge_logs": Role.owner,
}


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _sign(secret: str, binding: str) -> str:
    digest = hmac.new(secret.encode(), b"runhq-csrf\x00" + binding.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


@dataclass(frozen=True)
class BrowserSession:
    """Who is at the browser (``actor`` None: nobody logged in), in which language, and the
    CSRF binding of this visit."""

    actor: Actor | None
    email: str | None
    lang: str
    secure: bool
    secret: str
    #: The session token when it resolved to an actor, else the anonymous nonce.
    binding: str
    #: A nonce created by this request, to set as the ``runhq_csrf`` cookie.
    new_nonce: str | None = None
    #: The request carried a session cookie that no longer resolves: delete it.
    stale_cookie: bool = False

    def __repr__(self) -> str:  # never print the secret or the token
        return f"BrowserSession(actor={self.actor!r}, lang={self.lang!r})"

    @property
    def csrf_token(self) -> str:
        return _sign(self.secret, self.binding)

    def check_csrf(self, submitted: str | None) -> None:
        """403 unless ``submitted`` is this visit's token."""
        if not submitted or not hmac.compare_digest(submitted, self.csrf_token):
            raise CsrfRejected(
                "this form has expired or did not come from runhq: reload the page and try again"
            )

    def can(self, action: str) -> bool:
        """Whether to show the control for ``action`` (see ``PERMISSIONS``)."""
        return self.actor is not None and self.actor.has_at_least(PERMISSIONS[action])

    def require_actor(self) -> Actor:
        if self.actor is None:
            raise NotAuthenticated("log in to continue")
        return self.actor

    def apply_cookies(self, response: Response) -> None:
        """Set what this visit decided: the anonymous nonce, the removal of a dead session."""
        if self.new_nonce is not None:
            response.set_cookie(
                CSRF_COOKIE,
                self.new_nonce,
                httponly=True,
                samesite="lax",
                secure=self.secure,
                path="/",
            )
        if self.stale_cookie:
            clear_session_cookie(response, secure=self.secure)


def get_browser(request: Request, runtime: RuntimeDep) -> BrowserSession:
    """The visit behind ``request``. Resolving the session uses its own short transaction, so
    a page can call slow outside services before it opens the one for its own reads."""
    secret = runtime.settings.get_secret_key()
    lang = get_lang(request)
    secure = is_secure(request)
    token = request.cookies.get(SESSION_COOKIE)
    stale = False
    if token and not token.startswith(auth.API_KEY_PREFIX):
        try:
            with transaction(runtime.sessions) as session:
                actor = auth.resolve_token(session, token, secret=secret)
                email = auth.get_user(session, actor.user_id).email
        except NotAuthenticated:
            stale = True
        else:
            return BrowserSession(
                actor=replace(actor, via=VIA),
                email=email,
                lang=lang,
                secure=secure,
                secret=secret,
                binding="session:" + token,
            )
    elif token:
        stale = True
    nonce = request.cookies.get(CSRF_COOKIE)
    new_nonce = None
    if not nonce or len(nonce) > 100:
        nonce = new_nonce = secrets.token_urlsafe(32)
    return BrowserSession(
        actor=None,
        email=None,
        lang=lang,
        secure=secure,
        secret=secret,
        binding="anonymous:" + nonce,
        new_nonce=new_nonce,
        stale_cookie=stale,
    )


BrowserDep = Annotated[BrowserSession, Depends(get_browser)]


async def submitted_csrf_token(request: Request) -> str | None:
    """The token a request carries: the ``X-CSRF-Token`` header, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request, browser: BrowserDep) -> None:
    """Dependency of every state-changing dashboard route."""
    browser.check_csrf(await submitted_csrf_token(request))


def set_session_cookie(response: Response, token: str, *, max_age: int, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    # The anonymous nonce has done its job: the session token binds CSRF tokens from now on.
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site, else ``default`` (no open redirect)."""
    if not value or len(value) > 2000:
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def local_path_of(request: Request, url: str | None) -> str | None:
    """The path (and query) of ``url`` when it points at this site, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    if (parts.scheme, parts.netloc) != (request.url.scheme, request.url.netloc):
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return safe_next(path, default="") or None
