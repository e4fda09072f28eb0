"""Approvals (``/approvals``): the gated runs waiting for an owner, with what each will do,
and the owner's decision (approve or reject, always with a reason).

What a run will do is read from the run itself: its type (registry label, agent, risk), who
asked and when, its parameters, and for an action run the plan it made (deploy target and
ref, recipients, new price, SQL policy) with the plan's hash. The approve form sends that hash
back: ``runs.approve_run`` refuses (409) if the plan changed since the page showed it, so an
edited plan is never approved blindly. Only owners see the forms (``can('approve')``); the
service refuses anyone else (403) whatever the page shows.

After a decision the browser is redirected back to the list (``?done=approved&type=KEY``),
which says what happened and whose sidebar badge is counted again. A missing reason renders
the list again with the error next to that run's field (422); nothing is written.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runhq.auth import service as auth
from runhq.dashboard.pages import SECURITY_HEADERS, Page, PageDep
from runhq.dashboard.session import check_csrf
from runhq.i18n import Translator
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus

router = APIRouter(include_in_schema=False)

#: Pending runs per page.
PAGE_SIZE = 20
#: The longest reason kept (as the API's ``DecisionIn``/``RejectIn``).
REASON_MAX = 2000
#: A parameter longer than this is folded (an email's body, a SQL script).
LONG_VALUE = 280
#: ``requested_via`` values the page names in words; others are shown as they are.
KNOWN_VIA = frozenset({"api", "cli", "dashboard", "autopilot", "scheduler"})
#: Plan keys the page shows in words; any other key (an edited plan) is listed as it is.
_PLAN_KEYS = frozenset(
    {
        "action",
        "run_type",
        "platform_key",
        "parameters",
        "assessment",
        "target",
        "repository",
        "ref",
        "table",
        "sql",
        "subject",
        "message",
        "audience",
    }
)


@dataclass
class Pending:
    """One run waiting for a decision, as the template shows it."""

    run: Run
    label: str
    description: str
    risk: str
    agent_key: str
    agent_emoji: str
    agent_title: str
    requested_by: str  # an email, or who else asked (runhq itself, a former member)
    via: str
    params: list[tuple[str, str]]
    plan: dict[str, Any] | None = None
    extra_plan: list[tuple[str, str]] = field(default_factory=list)


def _text(value: object) -> str:
    """A parameter's value in words: text as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _host(url: object) -> str | None:
    """Only the host of a URL: deploy-hook URLs often carry a token in their path."""
    if not isinstance(url, str) or not url:
        return None
    return urlsplit(url).netloc or None


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plan_view(plan: dict[str, Any], tr: Translator) -> dict[str, Any]:
    """The plan's facts, ready to show (amounts formatted, no URL path)."""
    parameters = _table(plan.get("parameters"))
    view: dict[str, Any] = {
        "action": str(plan.get("action") or ""),
        "platform_key": plan.get("platform_key"),
        "assessment": str(plan.get("assessment") or ""),
    }
    action = view["action"]
    if action == "deploy":
        target = _table(plan.get("target"))
        view.update(
            repository=plan.get("repository"),
            ref=plan.get("ref"),
            target_type=target.get("type"),
            target_host=_host(target.get("url")),
            workflow=target.get("workflow"),
            target_error=target.get("error"),
        )
    elif action == "email":
        audience = _table(plan.get("audience"))
        recipients = audience.get("consented_contacts")
        view.update(
            subject=plan.get("subject"),
            message=str(plan.get("message") or ""),
            recipients=recipients if isinstance(recipients, int) else None,
        )
    elif action == "pricing":
        amount = parameters.get("new_amount_cents")
        currency = str(parameters.get("currency") or "eur")
        view.update(
            product=parameters.get("product"),
            price=tr.money(amount / 100, currency) if isinstance(amount, int) else None,
        )
    elif action == "rls":
        view.update(
            table=plan.get("table") or parameters.get("table"),
            command=parameters.get("command"),
            change=parameters.get("change"),
            sql=plan.get("sql"),
        )
    return view


def _requester(run: Run, emails: dict[uuid.UUID, str], tr: Translator) -> str:
    if run.requested_by is None:
        return tr.t("approvals.run.system")  # the scheduler or the autopilot
    return emails.get(run.requested_by) or tr.t("approvals.run.former_member")


def _pending(
    runs_: list[Run], registry: Registry, tr: Translator, emails: dict[uuid.UUID, str]
) -> list[Pending]:
    rows = []
    for run in runs_:
        spec = registry.run_types.get(run.run_type)
        agent = registry.agents.get(run.agent)
        item = Pending(
            run=run,
            label=spec.label.get(tr.lang) if spec else run.run_type,
            description=spec.description.get(tr.lang) if spec else "",
            risk=str(spec.risk) if spec else "",
            agent_key=run.agent,
            agent_emoji=agent.emoji if agent else "",
            agent_title=agent.title.get(tr.lang) if agent else run.agent,
            requested_by=_requester(run, emails, tr),
            via=run.requested_via,
            params=[(name, _text(value)) for name, value in sorted(run.params.items())],
        )
        if run.phase == "review" and isinstance(run.plan, dict):
            item.plan = _plan_view(run.plan, tr)
            item.extra_plan = [
                (key, _text(value))
                for key, value in sorted(run.plan.items())
                if key not in _PLAN_KEYS
            ]
        rows.append(item)
    return rows


def _hours(tr: Translator, hours: float) -> str:
    return tr.number(hours, 0 if float(hours).is_integer() else 1)


def _render(
    page: Page,
    *,
    cursor: str | None = None,
    done: str | None = None,
    done_type: str | None = None,
    errors: dict[uuid.UUID, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    rows, next_cursor = runs.list_runs(
        page.session,
        page.actor,
        status=[RunStatus.pending_approval],
        cursor=cursor,
        limit=PAGE_SIZE,
    )
    requesters = {run.requested_by for run in rows if run.requested_by is not None}
    emails = auth.list_member_emails(page.session, page.actor.workspace_id, requesters)
    registry = page.runtime.registry
    flash = None
    if done in ("approved", "rejected"):
        spec = registry.run_types.get(done_type or "")
        flash = {"decision": done, "label": spec.label.get(page.tr.lang) if spec else None}
    settings = page.runtime.settings
    return page.render(
        "approvals.html",
        {
            "pending": _pending(rows, registry, page.tr, emails),
            "next_cursor": next_cursor,
            "first_page": not cursor,
            "flash": flash,
            "errors": errors or {},
            "known_via": KNOWN_VIA,
            "reason_max": REASON_MAX,
            "long_value": LONG_VALUE,
            "approval_ttl_hours": _hours(page.tr, settings.approval_ttl_hours),
            "gate_max_age_hours": _hours(page.tr, settings.release_gate_max_age_hours),
        },
        status=status,
    )


@router.get("/approvals", response_class=HTMLResponse)
def approvals(
    page: PageDep,
    cursor: str | None = None,
    done: str | None = None,
    run_type: Annotated[str | None, Query(alias="type")] = None,
) -> HTMLResponse:
    return _render(page, cursor=cursor, done=done, done_type=run_type)


def _decided(decision: str, run: Run) -> RedirectResponse:
    query = urlencode({"done": decision, "type": run.run_type})
    return RedirectResponse(f"/approvals?{query}", 303, headers=SECURITY_HEADERS)


def _missing_reason(page: Page, run_id: uuid.UUID) -> HTMLResponse:
    """The list again, with the error next to this run's reason field (nothing written)."""
    return _render(page, errors={run_id: "approvals.form.reason_required"}, status=422)


ReasonForm = Annotated[str, Form(max_length=REASON_MAX)]


@router.post(
    "/approvals/{run_id}/approve",
    response_class=HTMLResponse,
    dependencies=[Depends(check_csrf)],
)
def approve(
    run_id: uuid.UUID,
    page: PageDep,
    reason: ReasonForm = "",
    plan_hash: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if not reason.strip():
        return _missing_reason(page, run_id)
    settings = page.runtime.settings
    # The hash the owner was shown (empty if the page showed no plan): for a run with a plan
    # the service refuses any other, so an edited plan is never approved unseen.
    run = runs.approve_run(
        page.session,
        page.actor,
        run_id,
        reason=reason.strip(),
        notify=page.runtime.notify,
        plan_hash=plan_hash,
        ttl=timedelta(hours=settings.approval_ttl_hours),
    )
    return _decided("approved", run)


@router.post(
    "/approvals/{run_id}/reject",
    response_class=HTMLResponse,
    dependencies=[Depends(check_csrf)],
)
def reject(run_id: uuid.UUID, page: PageDep, reason: ReasonForm = "") -> Response:
    if not reason.strip():
        return _missing_reason(page, run_id)
    run = runs.reject_run(page.session, page.actor, run_id, reason=reason.strip())
    return _decided("rejected", run)
