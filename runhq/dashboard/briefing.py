"""The Briefing Room (seed 000, ticket 6): MRR, active agents, uptime, last run, and the
latest daily executive brief.

Every card is loaded and rendered on its own: a loader that raises, or a card template that
fails, becomes "Could not load this module" and the other cards still render. Each loader runs
in a savepoint, so a failed statement does not abort the page's transaction (PostgreSQL).

The MRR is read from Stripe (``context.service.get_stripe_facts``: one attempt, a short
timeout) *before* the page opens its database transaction, and kept for
``RUNHQ_DASHBOARD_KPI_CACHE_SECONDS``. Unconfigured or failing, the card shows "—" with
"Service unavailable": never 0 or NaN.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.schemas import Actor
from runhq.config import Settings
from runhq.context import service as context
from runhq.context.connectors.base import ConnectorUnavailable
from runhq.dashboard.pages import Page
from runhq.i18n import Translator
from runhq.platforms import service as platforms
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus

logger = logging.getLogger(__name__)

#: The run type whose latest report the Briefing Room shows.
BRIEF_RUN_TYPE = "DAILY_EXECUTIVE_BRIEF"
#: An agent is active when it ran in this window (as in the runs' ``agents`` fact).
AGENT_WINDOW = timedelta(days=30)
#: The uptime card's window (a key of ``platforms.service.WINDOWS``).
UPTIME_WINDOW = "24h"
#: A failed Stripe read is tried again after at most this long.
MRR_FAILURE_TTL = timedelta(seconds=60)


# -- MRR (Stripe) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mrr:
    """The MRR per currency (major units), or why it is unavailable (``amounts`` None)."""

    amounts: dict[str, float] | None
    active_subscriptions: int = 0
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.amounts is not None


_mrr_cache: dict[tuple[str, str], tuple[datetime, Mrr]] = {}
_mrr_lock = threading.Lock()


def read_mrr(settings: Settings) -> Mrr:
    """The MRR for the Briefing Room; never raises (a failure is an unavailable Mrr)."""
    key = settings.stripe_api_key
    if key is None:
        return Mrr(None, reason=context.STRIPE_NOT_CONFIGURED)
    cache_key = (
        settings.stripe_base_url,
        hashlib.sha256(key.get_secret_value().encode()).hexdigest(),
    )
    now = clock.now()
    with _mrr_lock:
        cached = _mrr_cache.get(cache_key)
    if cached is not None and cached[0] > now:
        return cached[1]
    ttl = timedelta(seconds=settings.dashboard_kpi_cache_seconds)
    try:
        facts = context.get_stripe_facts(
            settings, attempts=1, timeout_seconds=settings.dashboard_kpi_timeout_seconds
        )
        mrr = Mrr(
            {str(c): float(v) for c, v in facts.get("mrr", {}).items()},
            active_subscriptions=int(facts.get("active_subscriptions", 0)),
        )
    except ConnectorUnavailable as exc:
        logger.warning("Briefing Room MRR unavailable: %s", exc.reason)
        mrr, ttl = Mrr(None, reason=exc.reason), min(ttl, MRR_FAILURE_TTL)
    except Exception as exc:  # a bug in the connector must not take the page down
        logger.exception("Briefing Room MRR failed")
        mrr = Mrr(None, reason=f"internal error: {type(exc).__name__}")
        ttl = min(ttl, MRR_FAILURE_TTL)
    if ttl > timedelta(0):
        with _mrr_lock:
            _mrr_cache[cache_key] = (now + ttl, mrr)
    return mrr


# -- the cards ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardInput:
    session: Session
    actor: Actor
    registry: Registry
    tr: Translator
    now: datetime
    mrr: Mrr


@dataclass(frozen=True)
class CardSpec:
    """A card: its loader (what the template gets as ``card``) and its template."""

    template: str
    load: Callable[[CardInput], dict[str, Any]]


def _mrr(inp: CardInput) -> dict[str, Any]:
    return {"mrr": inp.mrr}


def _agents(inp: CardInput) -> dict[str, Any]:
    stats = runs.get_agent_stats(inp.session, inp.actor.workspace_id, since=inp.now - AGENT_WINDOW)
    active = [s["agent"] for s in stats if s["runs"]]
    return {
        "active": len(active),
        "total": len(inp.registry.agents),
        "agents": [
            {"key": key, "emoji": agent.emoji, "title": agent.title.get(inp.tr.lang)}
            for key in active
            if (agent := inp.registry.agents.get(key)) is not None
        ],
        "window_days": AGENT_WINDOW.days,
    }


def _uptime(inp: CardInput) -> dict[str, Any]:
    ratio = platforms.get_average_uptime(inp.session, inp.actor.workspace_id, UPTIME_WINDOW)
    return {"ratio": ratio, "window": UPTIME_WINDOW}


def _label(registry: Registry, run: Run, lang: str) -> str:
    spec = registry.run_types.get(run.run_type)
    return spec.label.get(lang) if spec is not None else run.run_type


def _last_run(inp: CardInput) -> dict[str, Any]:
    rows, _ = runs.list_runs(inp.session, inp.actor, limit=1)
    if not rows:
        return {"run": None}
    run = rows[0]
    agent = inp.registry.agents.get(run.agent)
    return {
        "run": run,
        "label": _label(inp.registry, run, inp.tr.lang),
        "emoji": agent.emoji if agent else "",
        "at": run.finished_at or run.started_at or run.created_at,
    }


def _texts(value: object) -> list[str]:
    return (
        [str(v) for v in value if isinstance(v, str | int | float)]
        if isinstance(value, list)
        else []
    )


def _brief(inp: CardInput) -> dict[str, Any]:
    inp.registry.get(BRIEF_RUN_TYPE)  # the registry must still have it
    rows, _ = runs.list_runs(
        inp.session, inp.actor, status=[RunStatus.completed], run_type=BRIEF_RUN_TYPE, limit=1
    )
    if not rows:
        return {"run": None, "label": _label_of(inp)}
    run = rows[0]
    output = run.output if isinstance(run.output, dict) else {}
    sections = [
        {"title": str(s.get("title", "")), "content": str(s.get("content", ""))}
        for s in output.get("sections", [])
        if isinstance(s, dict)
    ]
    return {
        "run": run,
        "label": _label_of(inp),
        "summary": output.get("executive_summary") or run.executive_summary or "",
        "sections": sections,
        "recommendations": _texts(output.get("recommendations")),
        "risks": _texts(output.get("risks")),
        "offline": run.model_used == "offline",
    }


def _label_of(inp: CardInput) -> str:
    return inp.registry.get(BRIEF_RUN_TYPE).label.get(inp.tr.lang)


#: The cards in page order. Tests replace a loader to make one card fail.
CARDS: dict[str, CardSpec] = {
    "mrr": CardSpec("partials/card_mrr.html", _mrr),
    "agents": CardSpec("partials/card_agents.html", _agents),
    "uptime": CardSpec("partials/card_uptime.html", _uptime),
    "last_run": CardSpec("partials/card_last_run.html", _last_run),
    "brief": CardSpec("partials/card_brief.html", _brief),
}


def render_cards(page: Page, mrr: Mrr) -> dict[str, Markup]:
    """Each card's HTML; a card that fails to load or render says so, alone."""
    inp = CardInput(page.session, page.actor, page.runtime.registry, page.tr, clock.now(), mrr)
    rendered: dict[str, Markup] = {}
    for key, spec in CARDS.items():
        try:
            with page.session.begin_nested():
                data = spec.load(inp)
            rendered[key] = page.fragment(spec.template, {"card": data, "key": key})
        except Exception:
            logger.exception("Briefing Room card %s failed", key)
            rendered[key] = page.fragment("partials/card_failed.html", {"key": key})
    return rendered
