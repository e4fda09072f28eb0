"""Autopilot (``/autopilot``): the switch, the schedules with their next firings, and the
decision journal (seed 001's SchedulerPanel).

Everything is read through the scheduler's services: ``autopilot.get_autopilot`` (on/off,
interval, cycles), ``service.list_schedules`` and ``service.get_next_firings`` (computed, no
query), and ``autopilot.list_decisions`` / ``read_decision`` (the ``autopilot.decision`` log
lines: what was proposed, accepted, refused and why). Firings are shown in the page's language
and in each schedule's own time zone. The switch posts to ``/autopilot/switch``; it is shown
to admins (``can('switch_autopilot')``) and ``autopilot.set_autopilot`` refuses anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runhq.dashboard.pages import SECURITY_HEADERS, PageDep
from runhq.dashboard.session import check_csrf
from runhq.i18n import Translator
from runhq.registry.service import Registry
from runhq.scheduler import autopilot
from runhq.scheduler import service as schedules
from runhq.scheduler.models import Schedule
from runhq.scheduler.schemas import Decision

router = APIRouter(include_in_schema=False)

#: Decisions per page of the journal.
JOURNAL_SIZE = 20
#: Next firings shown per schedule.
FIRINGS = 5


@dataclass(frozen=True)
class Firing:
    at: datetime
    text: str  # in the page's language and the schedule's time zone


@dataclass
class ScheduleRow:
    schedule: Schedule
    label: str
    firings: list[Firing]


@dataclass(frozen=True)
class Job:
    """One job a decision talks about: proposed, and what became of it."""

    key: str
    label: str | None
    outcome: str  # accepted | awaiting | rejected
    reason: str | None = None
    run_id: str | None = None


@dataclass
class DecisionRow:
    decision: Decision
    jobs: list[Job] = field(default_factory=list)

    @property
    def rejected(self) -> list[Job]:
        return [job for job in self.jobs if job.outcome == "rejected"]

    @property
    def accepted(self) -> list[Job]:
        return [job for job in self.jobs if job.outcome != "rejected"]


def _label(registry: Registry, run_type: str, lang: str) -> str:
    spec = registry.run_types.get(run_type)
    return spec.label.get(lang) if spec else run_type


def _schedule_rows(rows: list[Schedule], registry: Registry, tr: Translator) -> list[ScheduleRow]:
    zones: dict[str, Translator] = {}
    out = []
    for schedule in rows:
        local = zones.get(schedule.timezone)
        if local is None:
            local = zones[schedule.timezone] = Translator(tr.lang, schedule.timezone)
        firings = (
            [
                Firing(at, local.timestamp(at))
                for at in schedules.get_next_firings(schedule, count=FIRINGS)
            ]
            if schedule.enabled
            else []
        )
        out.append(
            ScheduleRow(
                schedule=schedule,
                label=_label(registry, schedule.run_type, tr.lang),
                firings=firings,
            )
        )
    return out


def _decision_rows(decisions: list[Decision], labels: dict[str, str]) -> list[DecisionRow]:
    out = []
    for decision in decisions:
        row = DecisionRow(decision)
        run_ids = dict(zip(decision.accepted, decision.run_ids, strict=False))
        refused = {r.job_key: r.reason for r in decision.rejected}
        seen: set[str] = set()
        # Proposed first, in order; then anything the journal lists without proposing it.
        keys = [*decision.jobs_to_run, *decision.accepted, *refused]
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            if key in refused:
                row.jobs.append(Job(key, labels.get(key), "rejected", reason=refused[key]))
            else:
                outcome = "awaiting" if key in decision.awaiting_approval else "accepted"
                row.jobs.append(Job(key, labels.get(key), outcome, run_id=run_ids.get(key)))
        out.append(row)
    return out


@router.get("/autopilot", response_class=HTMLResponse)
def autopilot_panel(
    page: PageDep, cursor: str | None = None, done: str | None = None
) -> HTMLResponse:
    settings = page.runtime.settings
    registry = page.runtime.registry
    workspace_id = page.actor.workspace_id
    state = autopilot.get_autopilot(page.session, workspace_id, settings.autopilot_interval_minutes)
    schedule_list = schedules.list_schedules(page.session, workspace_id)
    journal, next_cursor = autopilot.list_decisions(
        page.session, workspace_id, cursor=cursor, limit=JOURNAL_SIZE
    )
    labels = {s.job_key: _label(registry, s.run_type, page.tr.lang) for s in schedule_list}
    return page.render(
        "autopilot.html",
        {
            "state": state,
            "mode": "deterministic" if page.runtime.gateway.offline else "model",
            "schedules": _schedule_rows(schedule_list, registry, page.tr),
            "decisions": _decision_rows([autopilot.read_decision(row) for row in journal], labels),
            "next_cursor": next_cursor,
            "first_page": not cursor,
            "done": done if done in ("on", "off") else None,
            "firings_count": FIRINGS,
        },
    )


@router.post("/autopilot/switch", dependencies=[Depends(check_csrf)])
def switch_autopilot(page: PageDep, enabled: Annotated[bool, Form()]) -> Response:
    autopilot.set_autopilot(
        page.session,
        page.actor,
        enabled=enabled,
        interval_minutes=None,
        default_interval=page.runtime.settings.autopilot_interval_minutes,
    )
    return RedirectResponse(
        f"/autopilot?done={'on' if enabled else 'off'}", 303, headers=SECURITY_HEADERS
    )
