"""The structured logs viewer (``/logs``, seed 001's StructuredLogsViewer): level, source and run
filters (a GET form), pages of ``PAGE_SIZE`` lines newest first with an "older" link (keyset
cursor), each line's metadata as pretty JSON, a link to its run, and a live tail.

The live tail: the first page carries a poller (``#logs-tail``) that asks ``/logs/tail`` every
``TAIL_SECONDS`` for the lines newer than the newest one shown, with the same filters
(``logs.service.list_logs_after``). The answer is the new lines, put on top of the list, and a
new poller carrying the newest line's cursor (an out-of-band swap); nothing new is a 204 and
htmx leaves the page alone. ``pages/logs.js`` adds the pause/resume button and keeps the list
to ``MAX_LINES``.

Every read is one indexed query: ``(workspace_id, created_at)`` for the pages and the tail,
``run_id`` for a run's lines. A filter value the page does not know is a 400 that says which
values are valid.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from runhq.dashboard.pages import SECURITY_HEADERS, PageDep
from runhq.errors import InvalidInput
from runhq.i18n import Translator
from runhq.logs import service as logs
from runhq.logs.models import StructuredLog
from runhq.logs.schemas import LogLevel, LogSource
from runhq.pagination import decode_cursor

router = APIRouter(include_in_schema=False)

#: Lines per page.
PAGE_SIZE = 50
#: Most lines one poll of the live tail brings (the next poll brings the rest).
TAIL_LIMIT = 100
#: How often the live tail asks for new lines (seconds; sooner while catching up).
TAIL_SECONDS = 2
TAIL_CATCH_UP = "300ms"
#: The most lines the page keeps while tailing (logs.js drops the oldest beyond).
MAX_LINES = 500


@dataclass(frozen=True)
class LogFilters:
    level: LogLevel | None = None
    source: LogSource | None = None
    run_id: uuid.UUID | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.level, self.source, self.run_id))

    def params(self, **extra: str | None) -> dict[str, str]:
        values = {
            "level": self.level.value if self.level else None,
            "source": self.source.value if self.source else None,
            "run_id": str(self.run_id) if self.run_id else None,
            **extra,
        }
        return {k: v for k, v in values.items() if v}

    def url(self, path: str, **extra: str | None) -> str:
        query = urlencode(self.params(**extra))
        return f"{path}?{query}" if query else path


def _shown(value: str) -> str:
    return value[:60] + ("…" if len(value) > 60 else "")


def _bad(tr: Translator, field: str, value: str, choices: str | None = None) -> InvalidInput:
    if choices is None:
        message = tr.t(f"logs.bad.{field}", value=_shown(value))
    else:
        message = tr.t(f"logs.bad.{field}", value=_shown(value), choices=choices)
    return InvalidInput(message, details={"field": field})


def parse_filters(
    tr: Translator, level: str | None, source: str | None, run_id: str | None
) -> LogFilters:
    """The filters of a request (empty values: no filter), or a 400 naming the valid ones."""
    level, source, run_id = (v.strip() if v else "" for v in (level, source, run_id))
    try:
        chosen_level = LogLevel(level) if level else None
    except ValueError:
        raise _bad(tr, "level", level, ", ".join(v.value for v in LogLevel)) from None
    try:
        chosen_source = LogSource(source) if source else None
    except ValueError:
        raise _bad(tr, "source", source, ", ".join(v.value for v in LogSource)) from None
    try:
        chosen_run = uuid.UUID(run_id) if run_id else None
    except ValueError:
        raise _bad(tr, "run_id", run_id) from None
    return LogFilters(chosen_level, chosen_source, chosen_run)


def _checked_cursor(tr: Translator, cursor: str | None, field: str) -> str | None:
    if not cursor:
        return None
    try:
        decode_cursor(cursor)
    except InvalidInput:
        raise _bad(tr, field, cursor) from None
    return cursor


def _label(tr: Translator, key: str, fallback: str) -> str:
    return tr.t(key) if tr.has(key) else fallback


def _line(tr: Translator, row: StructuredLog) -> dict[str, Any]:
    local = row.created_at.astimezone(tr.tz)
    meta = row.meta if isinstance(row.meta, dict) else {}
    return {
        "id": row.id,
        "cursor": logs.log_cursor(row),
        "level": row.level,
        "level_label": _label(tr, f"logs.levels.{row.level}", row.level),
        "source": row.source,
        "source_label": _label(tr, f"logs.sources.{row.source}", row.source),
        "message": row.message,
        "run_id": row.run_id,
        "iso": row.created_at.isoformat(),
        "date": tr.date(row.created_at),
        "time": f"{local:%H:%M:%S}",
        "meta": json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        if meta
        else None,
        "meta_count": len(meta),
    }


def _tail_url(filters: LogFilters, newest: str | None) -> str:
    return filters.url("/logs/tail", after=newest)


@router.get("/logs", response_class=HTMLResponse)
def logs_page(
    page: PageDep,
    level: str | None = None,
    source: str | None = None,
    run_id: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    filters = parse_filters(page.tr, level, source, run_id)
    cursor = _checked_cursor(page.tr, cursor, "cursor")
    rows, next_cursor = logs.list_logs(
        page.session,
        workspace_id=page.actor.workspace_id,
        level=filters.level,
        source=filters.source.value if filters.source else None,
        run_id=filters.run_id,
        cursor=cursor,
        limit=PAGE_SIZE,
    )
    lines = [_line(page.tr, row) for row in rows]
    first_page = cursor is None
    return page.render(
        "logs.html",
        {
            "filters": filters,
            "levels": list(LogLevel),
            "sources": list(LogSource),
            "lines": lines,
            "first_page": first_page,
            "older_url": filters.url("/logs", cursor=next_cursor) if next_cursor else None,
            "newest_url": None if first_page else filters.url("/logs"),
            "reset_url": "/logs",
            # The live tail follows the first page only: older pages stay still.
            "tail_url": _tail_url(filters, lines[0]["cursor"] if lines else None)
            if first_page
            else None,
            "tail_every": f"{TAIL_SECONDS}s",
            "max_lines": MAX_LINES,
        },
    )


@router.get("/logs/tail", response_class=HTMLResponse)
def logs_tail(
    page: PageDep,
    level: str | None = None,
    source: str | None = None,
    run_id: str | None = None,
    after: str | None = None,
) -> Response:
    """The lines newer than ``after`` (an HTMX fragment), or 204 when there are none."""
    filters = parse_filters(page.tr, level, source, run_id)
    after = _checked_cursor(page.tr, after, "after")
    rows, more = logs.list_logs_after(
        page.session,
        workspace_id=page.actor.workspace_id,
        after=after,
        level=filters.level,
        source=filters.source.value if filters.source else None,
        run_id=filters.run_id,
        limit=TAIL_LIMIT,
    )
    if not rows:
        return Response(status_code=204, headers=SECURITY_HEADERS)
    lines = [_line(page.tr, row) for row in reversed(rows)]  # newest first, like the page
    return page.partial(
        "partials/logs_tail.html",
        {
            "lines": lines,
            "tail_url": _tail_url(filters, lines[0]["cursor"]),
            # More waiting: the next poll comes at once rather than in TAIL_SECONDS.
            "tail_every": TAIL_CATCH_UP if more else f"{TAIL_SECONDS}s",
            "max_lines": MAX_LINES,
            "arrived": len(lines),
            "filters": filters,
        },
    )
