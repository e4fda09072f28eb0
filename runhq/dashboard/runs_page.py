"""Monitoring (``/runs``, seed 000 ticket 3: AgentMonitoringDashboard) and the run page
(``/runs/{id}``).

``/runs`` lists the workspace's runs newest first with filters in a GET form (status, run
type, agent, platform, period), a banner when runs failed in the last 24 h, the failures
filter with its explicit empty state, rows that expand to the full executive summary, the
error and the platform, a retry button, keyset pagination ("Older") that keeps the filters,
and live statuses: while a visible run is queued or running, one request every
``LIVE_SECONDS`` refreshes those rows (``/runs/live``, HTMX out-of-band swaps) and stops once
they are all finished. A filter value the page does not know is ignored and said so.

``/runs/{id}`` shows one run: type, agent, status, steps of its type, its log timeline,
tokens, estimated and actual cost, model, the facts gathered, the report and the error, with
retry and cancel by role. While the run is active its body refreshes itself
(``/runs/{id}/live``) until it is finished.

Reads go through ``runs.service`` and ``logs.service``; the page issues the same statements
whatever the number of runs it shows (listings leave the large JSON documents out).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runhq import clock
from runhq.dashboard.pages import SECURITY_HEADERS, Page, PageDep
from runhq.dashboard.session import check_csrf, is_htmx
from runhq.errors import InvalidInput, NotFound
from runhq.i18n import Translator
from runhq.logs import service as logs
from runhq.pagination import decode_cursor
from runhq.platforms import service as platforms
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.models import ACTIVE_STATUSES, Run, RunStatus

router = APIRouter(include_in_schema=False)

#: Rows per page of /runs.
PAGE_SIZE = 25
#: How often a page with a queued or running run asks for its status (seconds).
LIVE_SECONDS = 2
#: How often it asks when its active runs only wait for an owner's approval.
WAITING_SECONDS = 15
#: Log lines shown on a run page (newest kept when there are more).
LOG_LIMIT = 200
#: The period filter: key → how far back (None: no limit).
PERIODS: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_PERIOD = "all"
#: Status filter values besides the run statuses.
ACTIVE_FILTER = "active"
FAILURES_WINDOW = timedelta(hours=24)
_MAX_SHOWN = 80  # characters of an ignored filter value said back
_STATUS_FILTERS = frozenset({ACTIVE_FILTER, *(status.value for status in RunStatus)})
_BUSY = frozenset({RunStatus.queued.value, RunStatus.running.value})


# -- filters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilters:
    """What /runs is asked to show; every value is valid (unknown ones were dropped)."""

    status: str = ""
    run_type: str = ""
    agent: str = ""
    platform: str = ""
    period: str = DEFAULT_PERIOD
    cursor: str = ""

    @property
    def statuses(self) -> list[RunStatus] | None:
        if self.status == ACTIVE_FILTER:
            return sorted(ACTIVE_STATUSES)
        return [RunStatus(self.status)] if self.status else None

    @property
    def failures_only(self) -> bool:
        return self.status == RunStatus.failed.value

    @property
    def filtered(self) -> bool:
        """Some filter narrows the list (the pagination cursor is not a filter)."""
        return self != RunFilters(cursor=self.cursor)

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` (defaults left out)."""
        values = replace(self, **changes)
        pairs = [
            (name, value)
            for name, value in (
                ("status", values.status),
                ("run_type", values.run_type),
                ("agent", values.agent),
                ("platform", values.platform),
                ("period", values.period if values.period != DEFAULT_PERIOD else ""),
                ("cursor", values.cursor),
            )
            if value
        ]
        return urlencode(pairs)

    def url(self, **changes: str) -> str:
        query = self.query(**changes)
        return "/runs" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Ignored:
    """A filter value that was not understood: the page says it showed everything instead."""

    field: str
    value: str


def parse_filters(
    params: Mapping[str, str], registry: Registry
) -> tuple[RunFilters, list[Ignored]]:
    """The filters of a query string; unknown values are dropped and reported."""
    ignored: list[Ignored] = []

    def read(name: str, valid: bool | None = None, *, default: str = "") -> str:
        value = params.get(name, "").strip()
        if not value:
            return default
        if valid is None or valid:
            return value
        ignored.append(Ignored(name, value[:_MAX_SHOWN]))
        return default

    raw_status = params.get("status", "").strip()
    status = read("status", raw_status in _STATUS_FILTERS)
    raw_type = params.get("run_type", "").strip()
    run_type = read("run_type", raw_type in registry.run_types)
    raw_agent = params.get("agent", "").strip()
    agent = read("agent", raw_agent in registry.agents)
    raw_platform = params.get("platform", "").strip()
    platform = read("platform", len(raw_platform) <= 100)
    raw_period = params.get("period", "").strip()
    period = read("period", raw_period in PERIODS, default=DEFAULT_PERIOD)
    cursor = params.get("cursor", "").strip()
    if cursor:
        try:
            decode_cursor(cursor)
        except InvalidInput:
            ignored.append(Ignored("cursor", cursor[:_MAX_SHOWN]))
            cursor = ""
    filters = RunFilters(status, run_type, agent, platform, period, cursor)
    return filters, ignored


# -- what the templates get ---------------------------------------------------------------------


def run_label(registry: Registry, run: Run, lang: str) -> str:
    spec = registry.run_types.get(run.run_type)
    return spec.label.get(lang) if spec is not None else run.run_type


def agent_emoji(registry: Registry, key: str) -> str:
    agent = registry.agents.get(key)
    return agent.emoji if agent is not None else ""


def format_duration(tr: Translator, ms: int | None) -> str:
    """``850 ms``, ``1,2 s``, ``3 min 05 s``; unknown is ``—``."""
    if ms is None or ms < 0:
        return tr.number(None)
    if ms < 1000:
        return tr.t("run.duration.ms", n=tr.number(ms))
    seconds = ms / 1000
    if seconds < 60:
        return tr.t("run.duration.seconds", n=tr.number(seconds, 1))
    minutes, rest = divmod(round(seconds), 60)
    return tr.t("run.duration.minutes", m=tr.number(minutes), s=f"{rest:02d}")


def is_active(run: Run) -> bool:
    return RunStatus(run.status) in ACTIVE_STATUSES


def poll_seconds(rows: list[Run]) -> int | None:
    """How often to refresh these runs: often while one is queued or running, rarely while
    they only wait for an approval, never once all are finished."""
    statuses = {str(run.status) for run in rows}
    if statuses & _BUSY:
        return LIVE_SECONDS
    if RunStatus.pending_approval.value in statuses:
        return WAITING_SECONDS
    return None


def _helpers(page: Page) -> dict[str, Any]:
    registry = page.runtime.registry
    tr = page.tr
    return {
        "label_of": lambda run: run_label(registry, run, tr.lang),
        "emoji_of": lambda key: agent_emoji(registry, key),
        "duration": lambda ms: format_duration(tr, ms),
        "clock_time": lambda moment: f"{moment.astimezone(tr.tz):%H:%M:%S}",
        "is_active": is_active,
        "now": clock.now(),
    }


def _live_url(rows: list[Run]) -> str:
    return "/runs/live?" + urlencode([("ids", str(run.id)) for run in rows if is_active(run)])


def _redirect(request: Request, url: str) -> Response:
    """After a POST: HTMX follows ``HX-Redirect``; a plain form gets a 303."""
    if is_htmx(request):
        return Response(status_code=204, headers={**SECURITY_HEADERS, "HX-Redirect": url})
    return RedirectResponse(url, 303, headers=SECURITY_HEADERS)


def _run_id(value: str) -> uuid.UUID:
    """A run id from the path: anything that is not one names no run (404, never 500)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no run {value[:_MAX_SHOWN]!r}") from None


# -- /runs --------------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
def runs_list(page: PageDep) -> HTMLResponse:
    registry = page.runtime.registry
    filters, ignored = parse_filters(page.request.query_params, registry)
    period = PERIODS[filters.period]
    rows, next_cursor = runs.list_runs(
        page.session,
        page.actor,
        status=filters.statuses,
        run_type=filters.run_type or None,
        agent=filters.agent or None,
        platform_key=filters.platform or None,
        since=clock.now() - period if period is not None else None,
        cursor=filters.cursor or None,
        limit=PAGE_SIZE,
        documents=False,
    )
    context = {
        "filters": filters,
        "ignored": ignored,
        "rows": rows,
        "next_cursor": next_cursor,
        "poll": poll_seconds(rows),
        "live_url": _live_url(rows),
        **_helpers(page),
    }
    if is_htmx(page.request) and page.request.headers.get("HX-Target") == "runs-results":
        # The filter form and the pagination links swap the results only.
        return page.partial("partials/runs_results.html", context)
    lang = page.tr.lang
    context.update(
        failed_24h=runs.count_failed_since(
            page.session, page.actor.workspace_id, clock.now() - FAILURES_WINDOW
        ),
        run_types=sorted(
            ((spec.label.get(lang), key) for key, spec in registry.run_types.items()),
            key=lambda item: item[0].casefold(),
        ),
        agents=[
            (key, agent.emoji, agent.title.get(lang)) for key, agent in registry.agents.items()
        ],
        platforms=[p.key for p in platforms.list_platforms(page.session, page.actor.workspace_id)],
        statuses=[status.value for status in RunStatus],
        periods=list(PERIODS),
    )
    return page.render("runs.html", context)


@router.get("/runs/live", response_class=HTMLResponse)
def runs_live(page: PageDep) -> HTMLResponse:
    """The rows of active runs /runs shows, refreshed (out-of-band swaps), and the poller
    again while some are still active."""
    ids: list[uuid.UUID] = []
    for value in page.request.query_params.getlist("ids")[:PAGE_SIZE]:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    rows = runs.list_runs_by_ids(page.session, page.actor, ids, documents=False)
    context = {
        "rows": rows,
        "poll": poll_seconds(rows),
        "live_url": _live_url(rows),
        **_helpers(page),
    }
    return page.partial("partials/runs_live.html", context)


@router.post("/runs/{run_id}/retry", dependencies=[Depends(check_csrf)])
def retry(run_id: str, page: PageDep) -> Response:
    runtime = page.runtime
    new = runs.retry_run(
        page.session,
        page.actor,
        runtime.registry,
        _run_id(run_id),
        stuck_after=runtime.stuck_after,
        tz=runtime.settings.timezone,
        notify=runtime.notify,
    )
    return _redirect(page.request, f"/runs/{new.id}")


@router.post("/runs/{run_id}/cancel", dependencies=[Depends(check_csrf)])
def cancel(run_id: str, page: PageDep) -> Response:
    run = runs.cancel_run(page.session, page.actor, _run_id(run_id))
    return _redirect(page.request, f"/runs/{run.id}")


# -- /runs/{id} ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactView:
    key: str
    title: str
    status: str
    summary: str
    reason: str | None
    data: str | None  # pretty JSON, None when empty


def _facts(run: Run, tr: Translator) -> list[FactView]:
    """The facts gathered for ``run``, whatever shape an older run stored; the title of a
    known source in the visitor's language (the stored one is the model's, in English)."""
    context = run.context if isinstance(run.context, dict) else {}
    facts = context.get("facts")
    if not isinstance(facts, dict):
        return []
    views = []
    for key, fact in facts.items():
        if not isinstance(fact, dict):
            continue
        data = fact.get("data")
        views.append(
            FactView(
                key=str(key),
                title=(
                    tr.t(f"run.facts.source.{key}")
                    if tr.has(f"run.facts.source.{key}")
                    else str(fact.get("title") or key)
                ),
                status=str(fact.get("status") or "ok"),
                summary=str(fact.get("summary") or ""),
                reason=str(fact["reason"]) if fact.get("reason") else None,
                data=(
                    json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str)
                    if data
                    else None
                ),
            )
        )
    return views


def _texts(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v) for v in value if isinstance(v, str | int | float) and str(v).strip()]


def _report(run: Run) -> dict[str, Any]:
    output = run.output if isinstance(run.output, dict) else {}
    sections = [
        {"title": str(s.get("title", "")), "content": str(s.get("content", ""))}
        for s in output.get("sections", [])
        if isinstance(s, dict)
    ]
    verdict = output.get("verdict")
    return {
        "summary": str(output.get("executive_summary") or run.executive_summary or ""),
        "sections": sections,
        "recommendations": _texts(output.get("recommendations")),
        "risks": _texts(output.get("risks")),
        "verdict": verdict if verdict in ("pass", "fail") else None,
        "verdict_reasons": _texts(output.get("verdict_reasons")),
    }


def _pretty(value: object) -> str | None:
    if not value:
        return None
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _detail_context(page: Page, run: Run) -> dict[str, Any]:
    registry = page.runtime.registry
    spec = registry.run_types.get(run.run_type)
    agent = registry.agents.get(run.agent)
    lines, more = logs.list_logs(
        page.session, workspace_id=page.actor.workspace_id, run_id=run.id, limit=LOG_LIMIT
    )
    return {
        "run": run,
        "spec": spec,
        "label": run_label(registry, run, page.tr.lang),
        "agent": agent,
        "agent_title": agent.title.get(page.tr.lang) if agent is not None else run.agent,
        "logs": list(reversed(lines)),
        "more_logs": more is not None,
        "log_limit": LOG_LIMIT,
        "facts": _facts(run, page.tr),
        "report": _report(run),
        "params": _pretty(run.params),
        "plan": _pretty(run.plan),
        "action_result": _pretty(run.action_result),
        "pretty": _pretty,
        "poll": poll_seconds([run]),
        **_helpers(page),
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_detail(run_id: str, page: PageDep) -> HTMLResponse:
    run = runs.get_run(page.session, page.actor, _run_id(run_id))
    return page.render("run_detail.html", _detail_context(page, run))


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
def run_detail_live(run_id: str, page: PageDep) -> HTMLResponse:
    """The run page's body, for its refresh while the run is active."""
    run = runs.get_run(page.session, page.actor, _run_id(run_id))
    return page.partial("partials/runs_detail.html", _detail_context(page, run))
