"""Errors on dashboard pages: a page for browsers, a toast for HTMX, a redirect to log in.

Installed as the ``pages`` renderer of ``runhq.web.errors.install_error_handlers``: the API
keeps its JSON errors. Error pages read nothing from the database (they must render when it
is the thing that failed), so they show no sidebar.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from runhq.dashboard.i18n import get_lang
from runhq.dashboard.pages import SECURITY_HEADERS, html_response, render_template
from runhq.dashboard.session import is_htmx, local_path_of
from runhq.errors import RunhqError
from runhq.i18n import Translator
from runhq.web.errors import ErrorInfo

TOAST_EVENT = "runhq:toast"
#: Errors whose own message is not for people: the page says something fitting instead.
_GENERIC_MESSAGES = frozenset(
    {"not_found", "method_not_allowed", "internal_error", "csrf_rejected", "http_error"}
)


def login_url(next_path: str | None) -> str:
    return "/login" if not next_path or next_path == "/" else f"/login?next={quote(next_path)}"


def _return_to(request: Request) -> str | None:
    """Where to come back after logging in."""
    if is_htmx(request):
        return local_path_of(request, request.headers.get("HX-Current-URL"))
    if request.method in ("GET", "HEAD"):
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return local_path_of(request, request.headers.get("referer"))


def _timezone(request: Request) -> str:
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.settings.timezone if runtime is not None else "Europe/Paris"


def describe(tr: Translator, info: ErrorInfo) -> tuple[str, str]:
    """(title, message) of an error, in the visitor's language."""
    key = f"errors.{info.code}" if tr.has(f"errors.{info.code}.title") else "errors.generic"
    title = tr.t(f"{key}.title")
    if info.status >= 500:
        message = tr.t("errors.internal_error.message", reference=info.reference or "—")
    elif info.code in _GENERIC_MESSAGES and tr.has(f"{key}.message"):
        message = tr.t(f"{key}.message")
    else:
        # An expected error says what to fix: in the visitor's language when its details
        # carry what the sentence needs, else as the service wrote it.
        message = _localised_detail(tr, info) or info.message
    return title, message


def _listed(value: object) -> object:
    """A list of plain values as the sentence shows it; anything else as given."""
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return value


def _localised_detail(tr: Translator, info: ErrorInfo) -> str | None:
    if not info.details:
        return None
    # A sentence per reason when the error says why (``details.reason``), else one per code.
    reason = info.details.get("reason")
    key = f"errors.{info.code}.detail"
    if isinstance(reason, str) and tr.has(f"{key}_{reason}"):
        key = f"{key}_{reason}"
    if not tr.has(key):
        return None
    values = {
        k: v
        for k, v in ((k, _listed(v)) for k, v in info.details.items())
        if isinstance(v, str | int | float)
    }
    if reason == "type" and tr.has(f"errors.{info.code}.type_{values.get('expected')}"):
        values["expected"] = tr.t(f"errors.{info.code}.type_{values['expected']}")
    if isinstance(values.get("status"), str) and tr.has(f"status.{values['status']}"):
        values["status"] = tr.t(f"status.{values['status']}")
    for name in ("role", "required_role"):
        if isinstance(values.get(name), str) and tr.has(f"roles.{values[name]}"):
            values[name] = tr.t(f"roles.{values[name]}")
    for name in ("spent_eur", "reserved_eur", "monthly_limit_eur", "estimate_eur"):
        if isinstance(values.get(name), int | float):
            values[name] = tr.money(float(values[name]))
    if "action" in values:  # what was refused, in words; an action without words: as written
        action_key = f"errors.{info.code}.action_{values['action']}"
        if not tr.has(action_key):
            return None
        values["action"] = tr.t(action_key)
    if info.code == "budget_exceeded" and "scope" in values:
        scope = str(values["scope"])
        values["scope"] = (
            tr.t(f"errors.{info.code}.scope_global")
            if scope == "global"
            else tr.t(f"errors.{info.code}.scope_agent", agent=scope)
        )
    try:
        return tr.catalog[key].format(**values)
    except (KeyError, IndexError, ValueError):
        return None  # details without what the sentence needs: the service's own words


def localised_message(tr: Translator, exc: RunhqError) -> str:
    """An expected error's message in the visitor's language when its details allow it."""
    info = ErrorInfo(exc.status, exc.code, exc.message, exc.details)
    return _localised_detail(tr, info) or exc.message


def render_error(request: Request, info: ErrorInfo) -> Response:
    if info.code == "not_authenticated":
        target = login_url(_return_to(request))
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, 303, headers=SECURITY_HEADERS)
    tr = Translator(get_lang(request), _timezone(request))
    title, message = describe(tr, info)
    headers = {k: v for k, v in (info.headers or {}).items() if k.lower() == "allow"}
    if is_htmx(request):
        # app.js shows the toast; the status stays what it is. JSON escapes non-ASCII, so the
        # header stays ASCII whatever the language.
        toast = {"level": "error", "title": title, "message": message}
        headers["HX-Trigger"] = json.dumps({TOAST_EVENT: toast})
        return Response(status_code=info.status, headers={**SECURITY_HEADERS, **headers})
    body = render_template(
        "error.html",
        {
            "lang": tr.lang,
            "t": tr.t,
            "tn": tr.tn,
            "fmt": tr,
            "actor": None,
            "csrf_token": None,
            "badges": {},
            "current_path": request.url.path,
            "request_path": request.url.path,
            "status": info.status,
            "title": title,
            "message": message,
            "reference": info.reference,
        },
    )
    return html_response(None, body, status=info.status, headers=headers)
