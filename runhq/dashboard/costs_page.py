"""AI costs (``/costs``, seed 000 ticket 5, the AICostWidget): the month's total as a big
figure, estimated vs actual, spend against the budgets, a bar per run type and per agent (with
runs and average cost), and a month picker (``?month=YYYY-MM``).

Every figure comes from ``costs.service.get_cost_report`` (one grouped scan of the month's runs,
one query for the budgets and one per budget) and goes through ``fmt``: nothing is NaN, an
unknown average is "—". Bars are drawn with width classes in steps of 5 % (``pages/costs.css``:
the Content-Security-Policy refuses ``style`` attributes) and budgets with ``<meter>``; each
bar's figures are also written as text next to it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runhq.costs import service as costs
from runhq.costs.models import GLOBAL_SCOPE
from runhq.costs.schemas import BudgetStatus, CostLine
from runhq.dashboard.pages import PageDep
from runhq.errors import InvalidInput
from runhq.i18n import Translator
from runhq.registry.service import Registry

router = APIRouter(include_in_schema=False)

_MONTH_RE = re.compile(r"^[0-9]{4}-[0-9]{2}$")
#: Bars are drawn in steps of this many percent (classes ``bar--0`` … ``bar--100``).
BAR_STEP = 5
#: A budget is shown as nearly used up from this share on.
BUDGET_WARN = 0.8


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, value: str) -> Month:
        year, month = value.split("-")
        return cls(int(year), int(month))

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shift(self, months: int) -> Month | None:
        """The month ``months`` later (earlier if negative); None outside what reports cover."""
        index = self.year * 12 + self.month - 1 + months
        year, month = divmod(index, 12)
        if not costs.MIN_YEAR <= year <= costs.MAX_YEAR:
            return None
        return Month(year, month + 1)

    def label(self, tr: Translator) -> str:
        return tr.t("costs.month", month=tr.t(f"costs.month_names.m{self.month}"), year=self.year)


def parse_month(value: str | None, tr: Translator, current: str) -> str:
    """The month asked for (``YYYY-MM``, default the current one), or a translated 400."""
    if value is None or value.strip() == "":
        return current
    value = value.strip()
    valid = bool(_MONTH_RE.match(value)) and 1 <= int(value[5:]) <= 12
    if valid and costs.MIN_YEAR <= int(value[:4]) <= costs.MAX_YEAR:
        return value
    raise InvalidInput(
        tr.t(
            "costs.bad_month",
            value=value[:40],
            example=current,
            first=f"{costs.MIN_YEAR}-01",
            last=f"{costs.MAX_YEAR}-12",
        ),
        details={"field": "month"},
    )


def bar_class(value: float, largest: float) -> str:
    """``bar--<percent of largest, in steps of BAR_STEP>``; anything above zero shows."""
    if largest <= 0 or value <= 0 or not math.isfinite(value) or not math.isfinite(largest):
        return "bar--0"
    steps = round(min(value / largest, 1.0) * 100 / BAR_STEP)
    return f"bar--{max(steps, 1) * BAR_STEP}"


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 and math.isfinite(part) else None


def _line_view(line: CostLine, label: str, emoji: str, largest: float) -> dict[str, Any]:
    return {
        "key": line.key,
        "label": label,
        "emoji": emoji,
        "runs": line.runs,
        "total": line.total_cost,
        "estimated": line.estimated_total,
        "average": line.total_cost / line.runs if line.runs else None,
        "bar": bar_class(line.total_cost, largest),
    }


def _type_lines(lines: list[CostLine], registry: Registry, lang: str) -> list[dict[str, Any]]:
    largest = max((line.total_cost for line in lines), default=0.0)
    views = []
    for line in lines:
        spec = registry.run_types.get(line.key)  # a type since removed keeps its key
        agent = registry.agents.get(spec.agent) if spec is not None else None
        label = spec.label.get(lang) if spec is not None else line.key
        views.append(_line_view(line, label, agent.emoji if agent else "", largest))
    return views


def _agent_label(registry: Registry, key: str, lang: str) -> str:
    """``Directeur technique (CTO)`` / ``Chief Technology Officer (CTO)``; the key alone for an
    agent the registry no longer has."""
    agent = registry.agents.get(key)
    if agent is None:
        return key
    title = agent.title.get(lang)
    return title if f"({key})" in title else f"{title} ({key})"


def _agent_lines(lines: list[CostLine], registry: Registry, lang: str) -> list[dict[str, Any]]:
    largest = max((line.total_cost for line in lines), default=0.0)
    views = []
    for line in lines:
        agent = registry.agents.get(line.key)
        label = _agent_label(registry, line.key, lang)
        views.append(_line_view(line, label, agent.emoji if agent else "", largest))
    return views


def _call_lines(lines: list[CostLine], tr: Translator) -> list[dict[str, Any]]:
    """Model calls outside runs, by caller (the autopilot)."""
    largest = max((line.total_cost for line in lines), default=0.0)
    return [
        # A caller this version has no name for is shown by its key.
        _line_view(line, tr.catalog.get(f"costs.calls.sources.{line.key}", line.key), "", largest)
        for line in lines
    ]


def _budget_view(
    budget: BudgetStatus, registry: Registry, tr: Translator, lang: str
) -> dict[str, Any]:
    limit = budget.monthly_limit_eur
    used = budget.spent_eur + budget.reserved_eur
    if budget.scope == GLOBAL_SCOPE:
        label, emoji = tr.t("costs.budgets.global"), ""
    else:
        agent = registry.agents.get(budget.scope)
        label = _agent_label(registry, budget.scope, lang)
        emoji = agent.emoji if agent else ""
    ratio = _ratio(used, limit) if limit > 0 else (0.0 if used <= 0 else None)
    over = used > limit + 1e-9
    state = "over" if over else "warn" if ratio is not None and ratio >= BUDGET_WARN else "ok"
    # <meter> wants plain numbers (a dot, no grouping) within [0, max]; a zero budget is
    # empty until anything is spent, then full.
    meter_max, meter_value = (limit, min(used, limit)) if limit > 0 else (1.0, float(over))
    return {
        "scope": budget.scope,
        "label": label,
        "emoji": emoji,
        "limit": limit,
        "spent": budget.spent_eur,
        "reserved": budget.reserved_eur,
        "remaining": budget.remaining_eur,
        "used": used,
        "ratio": ratio,
        "over": over,
        "state": state,
        "meter": {
            "max": f"{meter_max:.2f}",
            "value": f"{meter_value:.2f}",
            "low": f"{meter_max * BUDGET_WARN:.2f}",
            # Just under the limit: a budget used up is red, not orange.
            "high": f"{meter_max * 0.9999:.6f}",
        },
    }


def _link(month: Month | None, tr: Translator) -> dict[str, str] | None:
    return None if month is None else {"key": month.key, "label": month.label(tr)}


@router.get("/costs", response_class=HTMLResponse)
def costs_page(page: PageDep, month: str | None = None) -> HTMLResponse:
    tz = page.runtime.settings.timezone
    current, _, _ = costs.month_bounds(None, tz)
    chosen = parse_month(month, page.tr, current)
    report = costs.get_cost_report(page.session, page.actor.workspace_id, tz=tz, month=chosen)
    registry, lang = page.runtime.registry, page.tr.lang
    shown = Month.parse(report.month)
    this_month = Month.parse(current)
    total, estimated = report.total_cost, report.estimated_total
    # Estimates and averages are the runs' own: model calls outside runs have no estimate.
    runs_total = sum(line.total_cost for line in report.by_run_type)
    return page.render(
        "costs.html",
        {
            "report": report,
            "month": shown.key,
            "month_label": shown.label(page.tr),
            "is_current": shown == this_month,
            "current": this_month.key,
            "previous": _link(shown.shift(-1), page.tr),
            "next": _link(shown.shift(1), page.tr),
            "min_month": f"{costs.MIN_YEAR}-01",
            "max_month": f"{costs.MAX_YEAR}-12",
            "total": total,
            "estimated": estimated,
            "gap": runs_total - estimated,
            "gap_ratio": _ratio(runs_total - estimated, estimated),
            "average": runs_total / report.runs if report.runs else None,
            "types": _type_lines(report.by_run_type, registry, lang),
            "agents": _agent_lines(report.by_agent, registry, lang),
            "calls": _call_lines(report.model_calls, page.tr),
            "budgets": [
                _budget_view(b, registry, page.tr, lang)
                for b in sorted(report.budgets, key=lambda b: (b.scope != GLOBAL_SCOPE, b.scope))
            ],
        },
    )
