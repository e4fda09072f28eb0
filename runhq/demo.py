"""Demo data for a fresh install: two weeks of run history so every screen has something.

Every demo run is marked ``requested_via = "demo"``; figures are plausible, not invented
about a real company (there is none yet): they are labelled as demo in the summaries.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.schemas import Actor
from runhq.costs import service as costs
from runhq.i18n import get_translator
from runhq.platforms import service as platforms
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.scheduler import service as scheduler

DEMO_PLATFORMS = ("app", "website", "api")
_ERRORS = (
    "model provider failed: gemini-2.5-pro: HTTP 503; gemini-2.5-flash: timeout",
    "model provider failed: gemini-2.5-flash: HTTP 429 rate_limit_exceeded",
)


def seed_demo(
    session: Session,
    workspace_id: uuid.UUID,
    registry: Registry,
    *,
    days: int = 14,
    seed: int = 7,
    lang: str = "fr",
    tz: str = "Europe/Paris",
) -> int:
    """Insert the demo history, its reports' summaries in ``lang`` (the report language);
    returns how many runs were added."""
    rng = random.Random(seed)  # noqa: S311 - demo figures, not security
    tr = get_translator(lang, tz)
    now = clock.now()
    count = 0
    keys = list(registry.run_types)
    daily = ["DAILY_EXECUTIVE_BRIEF", "PLATFORM_STATUS_REVIEW", "CEO_STANDUP_MEETING"]
    for day in range(days, 0, -1):
        base = now - timedelta(days=day)
        chosen = daily + rng.sample(keys, 2)
        for i, key in enumerate(chosen):
            spec = registry.run_types[key]
            if spec.requires_approval:
                continue
            created = base + timedelta(hours=7 + i, minutes=rng.randint(0, 50))
            failed = rng.random() < 0.12
            tokens_in = rng.randint(2500, 9000)
            tokens_out = rng.randint(600, 1800)
            cost = round(spec.estimated_cost_eur * rng.uniform(0.6, 1.2), 4)
            platform = rng.choice(DEMO_PLATFORMS) if "PLATFORM" in key else None
            runs.import_run_record(
                session,
                workspace_id,
                registry,
                run_type=key,
                status=RunStatus.failed if failed else RunStatus.completed,
                created_at=created,
                requested_via="demo",
                platform_key=platform,
                executive_summary=None
                if failed
                else tr.tn(
                    "report.demo_summary",
                    rng.randint(0, 3),
                    label=spec.label.get(lang),
                    date=tr.date(created),
                ),
                error=rng.choice(_ERRORS) if failed else None,
                tokens_in=0 if failed else tokens_in,
                tokens_out=0 if failed else tokens_out,
                actual_cost=0.0 if failed else cost,
                duration_ms=rng.randint(4000, 40000),
                model_used=None if failed else spec.model,
            )
            count += 1
    costs.set_budget(session, workspace_id, scope="global", monthly_limit_eur=50.0)
    return count


# What the demo schedules: the daily brief, a platform review every 6 h, a weekly RLS audit.
DEMO_SCHEDULES = (
    ("daily-brief", "DAILY_EXECUTIVE_BRIEF", "30 7 * * *"),
    ("platform-review", "PLATFORM_STATUS_REVIEW", "0 */6 * * *"),
    ("weekly-rls-audit", "SECURITY_AUDIT_RLS", "0 6 * * 1"),
)


def seed_demo_setup(
    session: Session, owner: Actor, registry: Registry, *, base_url: str, checks: int = 12
) -> None:
    """Watched platforms and schedules for the demo workspace.

    The platforms watch this runhq server itself (its health endpoints at ``base_url``), so
    the uptime shown is real; the first checks are recorded now so the Briefing Room has an
    uptime before the scheduler's first round.
    """
    base = base_url.rstrip("/")
    for key, name, path in (
        ("app", "runhq (demo: this server)", "/health/live"),
        ("api", "runhq API (demo: this server)", "/health/ready"),
    ):
        platform = platforms.create_platform(
            session, owner, key=key, name=name, health_urls=[f"{base}{path}"]
        )
        for _ in range(checks):
            platforms.record_check(
                session,
                platform,
                [(platform.health_urls[0], {"ok": True, "status_code": 200, "latency_ms": 8})],
            )
    for job_key, run_type, cron in DEMO_SCHEDULES:
        scheduler.create_schedule(
            session, owner, registry, job_key=job_key, run_type=run_type, cron=cron
        )
