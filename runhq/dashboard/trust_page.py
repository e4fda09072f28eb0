"""Trust (``/trust``): the last security scan, with a link to its report, and runhq's security
choices in plain words.

The last scan is the latest completed run of the security run types (``SCAN_RUN_TYPES``, each
checked against the registry): one ``runs.list_runs`` per type, newest first, one row. With
none, the page says so and how to start one. The security choices are texts of the catalogs;
each states what the code does (see the module each one names), and where a setting changes it
the page shows the configured value (session lifetime, approval expiry, log retention, the
database, whether a model is configured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runhq.dashboard.pages import CONTENT_SECURITY_POLICY, PageDep
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus

router = APIRouter(include_in_schema=False)

#: The run types whose completed runs count as a security scan (seed 000, ticket 1).
SCAN_RUN_TYPES = ("SECURITY_AUDIT_RLS", "VULNERABILITY_SCAN")
_BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Scan:
    run_type: str
    label: str
    description: str
    run: Run | None

    @property
    def at(self) -> Any:
        if self.run is None:
            return None
        return self.run.finished_at or self.run.created_at


def _hours(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


@router.get("/trust", response_class=HTMLResponse)
def trust(page: PageDep) -> HTMLResponse:
    registry = page.runtime.registry
    settings = page.runtime.settings
    lang = page.tr.lang
    scans = []
    for run_type in SCAN_RUN_TYPES:
        spec = registry.get(run_type)  # the registry must still have it
        rows, _ = runs.list_runs(
            page.session, page.actor, status=[RunStatus.completed], run_type=run_type, limit=1
        )
        scans.append(
            Scan(
                run_type,
                spec.label.get(lang),
                spec.description.get(lang),
                rows[0] if rows else None,
            )
        )
    done = [scan for scan in scans if scan.run is not None]
    latest = max(done, key=lambda scan: scan.at) if done else None
    backend = page.runtime.db.dialect.name
    return page.render(
        "trust.html",
        {
            "scans": scans,
            "latest": latest,
            "session_hours": _hours(settings.session_ttl_minutes / 60),
            "approval_hours": _hours(settings.approval_ttl_hours),
            "log_retention_days": settings.log_retention_days,
            "database": _BACKENDS.get(backend, backend),
            "model_configured": not page.runtime.gateway.offline,
            "https": page.browser.secure,
            "csp": CONTENT_SECURITY_POLICY,
        },
    )
