"""The context providers and ``gather_context``: each run's facts, stored with it.

Internal providers read runhq's own data through the other domains' services; external
ones (Stripe, GitHub, web search) are real HTTP clients that say "unavailable" with the
reason when they are not configured or fail. A provider never fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from runhq.config import Settings
from runhq.context.connectors.base import ConnectorUnavailable
from runhq.context.connectors.github import fetch_github_facts
from runhq.context.connectors.stripe import fetch_stripe_facts
from runhq.context.connectors.web_search import fetch_web_search_facts
from runhq.context.schemas import ContextRequest, Fact
from runhq.costs import service as costs
from runhq.db.session import is_reader
from runhq.i18n import Translator, get_translator
from runhq.logs import service as logs
from runhq.platforms import service as platforms
from runhq.runs import service as runs

logger = logging.getLogger(__name__)

Provider = Callable[[ContextRequest], Fact]


def _texts(req: ContextRequest) -> Translator:
    """The facts are written in the report language (``RUNHQ_REPORT_LANGUAGE``)."""
    return get_translator(req.settings.report_language, req.settings.timezone)


def _recent_runs(req: ContextRequest) -> Fact:
    since = req.now - timedelta(days=7)
    stats = runs.get_recent_run_stats(
        req.session, req.workspace_id, since=since, exclude_run_id=req.run_id
    )
    latest = runs.list_latest_completed(
        req.session, req.workspace_id, since=since, limit=8, exclude_run_id=req.run_id
    )
    total = sum(s["total"] for s in stats)
    completed = sum(s["by_status"].get("completed", 0) for s in stats)
    failed = sum(s["by_status"].get("failed", 0) for s in stats)
    tr = _texts(req)
    summary = tr.tn(
        "facts.recent_runs.summary", total, completed=completed, failed=failed, pairs=len(stats)
    )
    return Fact(
        source="recent_runs",
        title=tr.t("facts.recent_runs.title"),
        status="ok",
        summary=summary,
        data={
            "window_days": 7,
            "total": total,
            "completed": completed,
            "failed": failed,
            "by_type": stats[:30],
            "latest_reports": [
                {
                    "run_type": r.run_type,
                    "platform_key": r.platform_key,
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "executive_summary": (r.executive_summary or "")[:600],
                }
                for r in latest
            ],
        },
    )


# Failures of one run type on one platform within 24 h that make them recurring (release gate).
RECURRING_FAILURES = 2


def _failures(req: ContextRequest) -> Fact:
    week_since, day_since = req.now - timedelta(days=7), req.now - timedelta(hours=24)
    counts = runs.count_failed(req.session, req.workspace_id, since=week_since, day_since=day_since)
    recent = runs.list_failed(req.session, req.workspace_id, since=week_since, limit=10)
    failed_7d = sum(int(c.since) for c in counts)
    failed_24h = sum(int(c.last_day) for c in counts)
    by_type: dict[str, int] = {}
    for c in counts:
        by_type[c.run_type] = by_type.get(c.run_type, 0) + int(c.since)
    # The same run type failing again on the same platform within a day: not a blip.
    recurring = sorted(
        (
            {"run_type": c.run_type, "platform_key": c.platform_key, "failures": int(c.last_day)}
            for c in counts
            if int(c.last_day) >= RECURRING_FAILURES
        ),
        key=lambda r: (-r["failures"], r["run_type"], r["platform_key"] or ""),
    )
    tr = _texts(req)
    if failed_7d:
        worst = ", ".join(f"{k} ×{v}" for k, v in sorted(by_type.items(), key=lambda i: -i[1])[:3])
        summary = tr.tn("facts.failures.summary", failed_24h, week=failed_7d, worst=worst)
    else:
        summary = tr.t("facts.failures.none")
    return Fact(
        source="failures",
        title=tr.t("facts.failures.title"),
        status="ok",
        summary=summary,
        data={
            "failed_24h": failed_24h,
            "failed_7d": failed_7d,
            "by_run_type_7d": by_type,
            "recurring_24h": recurring,
            "recent": [
                {
                    "run_id": str(r.id),
                    "run_type": r.run_type,
                    "platform_key": r.platform_key,
                    "created_at": r.created_at.isoformat(),
                    "error": (r.error or "")[:300],
                }
                for r in recent
            ],
        },
    )


def _costs(req: ContextRequest) -> Fact:
    report = costs.get_cost_report(req.session, req.workspace_id, tz=req.settings.timezone)
    budget = next((b for b in report.budgets if b.scope == "global"), None)
    tr = _texts(req)
    spent = {"spent": tr.money(report.total_cost), "runs": report.runs, "month": report.month}
    if budget is not None:
        summary = tr.t(
            "facts.costs.with_budget",
            **spent,
            limit=tr.money(budget.monthly_limit_eur),
            remaining=tr.money(budget.remaining_eur),
        )
    else:
        summary = tr.t("facts.costs.without_budget", **spent)
    return Fact(
        source="costs",
        title=tr.t("facts.costs.title"),
        status="ok",
        summary=summary,
        data=report.model_dump(mode="json"),
    )


def _log_errors(req: ContextRequest) -> Fact:
    counts = logs.count_by_source_level(
        req.session, req.workspace_id, since=req.now - timedelta(hours=24)
    )
    recent = logs.list_recent_errors(
        req.session, req.workspace_id, since=req.now - timedelta(hours=24), limit=8
    )
    total = sum(n for _, _, n in counts)
    errors = sum(n for _, level, n in counts if level == "error")
    warns = sum(n for _, level, n in counts if level == "warn")
    rate = errors / total if total else 0.0
    tr = _texts(req)
    return Fact(
        source="log_errors",
        title=tr.t("facts.log_errors.title"),
        status="ok",
        summary=tr.t(
            "facts.log_errors.summary",
            errors=errors,
            warnings=warns,
            total=total,
            rate=tr.percent(rate),
        ),
        data={
            "total": total,
            "errors": errors,
            "warnings": warns,
            "error_rate": round(rate, 4),
            "by_source": [{"source": s, "level": lv, "count": n} for s, lv, n in counts],
            "recent_errors": [
                {
                    "message": e.message,
                    "source": e.source,
                    "at": e.created_at.isoformat(),
                    "run_id": str(e.run_id) if e.run_id else None,
                }
                for e in recent
            ],
        },
    )


def _pending_approvals(req: ContextRequest) -> Fact:
    pending = runs.list_pending_approval(req.session, req.workspace_id)
    oldest_h = int((req.now - pending[0].created_at).total_seconds() // 3600) if pending else 0
    tr = _texts(req)
    summary = (
        tr.tn("facts.pending_approvals.summary", len(pending), hours=oldest_h)
        if pending
        else tr.t("facts.pending_approvals.none")
    )
    return Fact(
        source="pending_approvals",
        title=tr.t("facts.pending_approvals.title"),
        status="ok",
        summary=summary,
        data={
            "count": len(pending),
            "runs": [
                {
                    "run_id": str(r.id),
                    "run_type": r.run_type,
                    "platform_key": r.platform_key,
                    "waiting_since": r.created_at.isoformat(),
                    "params": r.params,
                }
                for r in pending[:20]
            ],
        },
    )


def _agents(req: ContextRequest) -> Fact:
    stats = runs.get_agent_stats(req.session, req.workspace_id, since=req.now - timedelta(days=30))
    active = [s for s in stats if s["runs"]]
    tr = _texts(req)
    return Fact(
        source="agents",
        title=tr.t("facts.agents.title"),
        status="ok",
        summary=tr.tn("facts.agents.summary", len(active)),
        data={"window_days": 30, "agents": stats},
    )


def _platforms(req: ContextRequest) -> Fact:
    all_platforms = platforms.list_platforms(req.session, req.workspace_id)
    chosen = (
        [p for p in all_platforms if p.key == req.platform_key]
        if req.platform_key
        else all_platforms
    )
    tr = _texts(req)
    if not chosen:
        return _unavailable(
            req,
            "platforms",
            tr.t("facts.platforms.not_configured_one", platform=req.platform_key)
            if req.platform_key
            else tr.t("facts.platforms.not_configured_any"),
        )
    ids = [p.id for p in chosen]
    day = platforms.get_uptime(req.session, ids, req.now - timedelta(hours=24))
    week = platforms.get_uptime(req.session, ids, req.now - timedelta(days=7))
    open_incidents = platforms.list_open_incidents(req.session, ids)
    recent_incidents = platforms.list_recent_incidents(req.session, ids, per_platform=5)
    rows: list[dict[str, Any]] = []
    down: list[str] = []
    for p in chosen:
        incident = open_incidents.get(p.id)
        recent = recent_incidents[p.id]
        n24, ok24 = day.get(p.id, (0, 0))
        n7, ok7 = week.get(p.id, (0, 0))
        if incident is not None:
            down.append(p.key)
        rows.append(
            {
                "platform_key": p.key,
                "name": p.name,
                "environment": p.environment,
                "uptime_24h": round(ok24 / n24, 4) if n24 else None,
                "uptime_7d": round(ok7 / n7, 4) if n7 else None,
                "checks_24h": n24,
                "consecutive_failures": p.consecutive_failures,
                "open_incident": {
                    "reason": incident.reason,
                    "since": incident.opened_at.isoformat(),
                }
                if incident
                else None,
                "incidents_recent": [
                    {
                        "opened_at": i.opened_at.isoformat(),
                        "closed_at": i.closed_at.isoformat() if i.closed_at else None,
                        "reason": i.reason,
                    }
                    for i in recent
                ],
            }
        )
    ratios = [float(ok / n) for n, ok in day.values() if n]
    avg = tr.percent(sum(ratios) / len(ratios), 2) if ratios else tr.t("facts.platforms.no_checks")
    incidents = (
        tr.t("facts.platforms.open_incident", platforms=", ".join(down))
        if down
        else tr.t("facts.platforms.no_incident")
    )
    summary = tr.tn("facts.platforms.summary", len(rows), uptime=avg, incidents=incidents)
    return Fact(
        source="platforms",
        title=tr.t("facts.platforms.title"),
        status="ok",
        summary=summary,
        data={"platforms": rows},
    )


def _unavailable(req: ContextRequest, source: str, reason: str, *, configured: bool = True) -> Fact:
    """A source that gave nothing. ``configured=False``: it is not set up here (the facts it
    would give do not apply), as opposed to set up but failing (they are unknown)."""
    tr = _texts(req)
    key = f"facts.{source}.title"
    title = tr.t(key) if tr.has(key) else source.replace("_", " ").capitalize()
    return Fact(
        source=source,
        title=title,
        status="unavailable",
        summary=tr.t("facts.unavailable", title=title, reason=reason),
        data={} if configured else {"configured": False},
        reason=reason,
    )


def _http(req: ContextRequest) -> httpx.Client:
    return httpx.Client(
        timeout=req.settings.connector_timeout_seconds, headers={"User-Agent": "runhq"}
    )


STRIPE_NOT_CONFIGURED = "Stripe is not configured (RUNHQ_STRIPE_API_KEY)"


def get_stripe_facts(
    settings: Settings, *, attempts: int = 3, timeout_seconds: float | None = None
) -> dict[str, Any]:
    """MRR per currency and subscription counts, read live from Stripe (the run's ``stripe``
    fact and the Briefing Room's MRR card). Raises ``ConnectorUnavailable`` with the reason
    when Stripe is not configured, unreachable or refuses."""
    key = settings.stripe_api_key
    if key is None:
        raise ConnectorUnavailable(STRIPE_NOT_CONFIGURED)
    timeout = timeout_seconds or settings.connector_timeout_seconds
    with httpx.Client(timeout=timeout, headers={"User-Agent": "runhq"}) as client:
        return fetch_stripe_facts(
            client,
            api_key=key.get_secret_value(),
            base_url=settings.stripe_base_url,
            attempts=attempts,
        )


def _stripe(req: ContextRequest) -> Fact:
    tr = _texts(req)
    try:
        data = get_stripe_facts(req.settings)
    except ConnectorUnavailable as exc:
        if exc.reason == STRIPE_NOT_CONFIGURED:
            return _unavailable(
                req, "stripe", tr.t("facts.stripe.not_configured"), configured=False
            )
        return _unavailable(req, "stripe", exc.reason)
    mrr = ", ".join(tr.money(v, c) for c, v in sorted(data.get("mrr", {}).items()))
    return Fact(
        source="stripe",
        title=tr.t("facts.stripe.title"),
        status="ok",
        summary=tr.t(
            "facts.stripe.summary",
            mrr=mrr or tr.money(0),
            subscriptions=data.get("active_subscriptions", 0),
        ),
        data=data,
    )


def _github(req: ContextRequest) -> Fact:
    tr = _texts(req)
    repo = req.settings.github_repository
    if not repo:
        return _unavailable(req, "github", tr.t("facts.github.not_configured"), configured=False)
    token = req.settings.github_token
    try:
        with _http(req) as client:
            data = fetch_github_facts(
                client,
                token=token.get_secret_value() if token else None,
                repository=repo,
                api_url=req.settings.github_api_url,
                now=req.now,
            )
    except (ConnectorUnavailable, ValueError) as exc:
        return _unavailable(req, "github", getattr(exc, "reason", str(exc)))
    rate = data.get("workflow_runs", {}).get("failure_rate")
    return Fact(
        source="github",
        title=tr.t("facts.github.title"),
        status="ok",
        summary=tr.t(
            "facts.github.summary",
            repository=repo,
            commits=data.get("commits", {}).get("count", 0),
            days=data.get("window_days", 7),
            prs=data.get("pull_requests", {}).get("open_count", 0),
            ci=tr.t("facts.github.ci", rate=tr.percent(rate, 0))
            if isinstance(rate, int | float)
            else "",
        ),
        data=data,
    )


def _web_search(req: ContextRequest) -> Fact:
    tr = _texts(req)
    key = req.settings.web_search_api_key
    if key is None:
        return _unavailable(
            req, "web_search", tr.t("facts.web_search.not_configured"), configured=False
        )
    try:
        with _http(req) as client:
            data = fetch_web_search_facts(
                client,
                api_key=key.get_secret_value(),
                query=req.topic,
                base_url=req.settings.web_search_base_url,
            )
    except ConnectorUnavailable as exc:
        return _unavailable(req, "web_search", exc.reason)
    return Fact(
        source="web_search",
        title=tr.t("facts.web_search.title"),
        status="ok",
        summary=tr.tn("facts.web_search.summary", len(data.get("results", [])), topic=req.topic),
        data=data,
    )


PROVIDERS: dict[str, Provider] = {
    "recent_runs": _recent_runs,
    "failures": _failures,
    "costs": _costs,
    "log_errors": _log_errors,
    "pending_approvals": _pending_approvals,
    "agents": _agents,
    "platforms": _platforms,
    "stripe": _stripe,
    "github": _github,
    "web_search": _web_search,
}


def check_providers(names: set[str]) -> list[str]:
    """Names the registry uses that no provider serves (a start-up check)."""
    return sorted(names - set(PROVIDERS))


def gather_context(req: ContextRequest, names: list[str]) -> dict[str, Any]:
    """Run each named provider; a provider that raises becomes an 'unavailable' fact."""
    facts: dict[str, Any] = {}
    for name in names:
        provider = PROVIDERS[name]
        try:
            if is_reader(req.session):  # each query commits alone: a failure stays contained
                fact = provider(req)
            else:
                # A savepoint: a failed query (PostgreSQL aborts the transaction) stays
                # contained.
                with req.session.begin_nested():
                    fact = provider(req)
        except Exception as exc:  # one broken source must not sink the run
            logger.exception("context provider %s failed", name)
            error = _texts(req).t("facts.internal_error", error=type(exc).__name__)
            fact = _unavailable(req, name, error)
        facts[name] = fact.to_dict()
    return {
        "gathered_at": req.now.isoformat(),
        "run_type": req.run_type,
        "platform_key": req.platform_key,
        "params": req.params,
        "facts": facts,
    }
