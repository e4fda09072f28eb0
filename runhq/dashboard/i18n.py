"""The visitor's language: the dashboard's side of ``runhq.i18n``."""

from __future__ import annotations

from starlette.requests import Request

from runhq.i18n import DEFAULT_LANG, LANGS

LANG_COOKIE = "runhq_lang"


def get_lang(request: Request) -> str:
    """The visitor's language: the ``runhq_lang`` cookie when it names a known one, else fr."""
    value = request.cookies.get(LANG_COOKIE, "")
    return value if value in LANGS else DEFAULT_LANG
