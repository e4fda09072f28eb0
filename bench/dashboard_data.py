"""A large workspace for the dashboard benchmark: 10,000 runs and 100,000 log lines.

Written through the services (``runs.import_run_record``, ``logs.create_log``), as an
import of history would be, into a fresh database. Deterministic (seeded).
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.costs import service as costs
from runhq.db.session import transaction
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.registry.service import Registry
from runhq.runs import service as runs
from runhq.runs.models import RunStatus

PLATFORMS = ("app", "website", "api", "billing", "mobile")
_LEVELS = (LogLevel.info,) * 16 + (LogLevel.warn,) * 3 + (LogLevel.error,)
_SOURCES = tuple(LogSource)
_SUMMARY = (
    "Demo figures for the benchmark. Runs completed on schedule; two incidents were resolved "
    "and spend stays within budget. Priorities: ship the billing fix, review the failed "
    "deploy gate, and confirm the pricing change with the owner. "
)


def seed_large_workspace(
    sessions: sessionmaker[Session],
    registry: Registry,
    *,
    runs_count: int = 10_000,
    logs_count: int = 100_000,
    days: int = 90,
    batch: int = 500,
    seed: int = 11,
    password: str = "bench-password-1",  # noqa: S107 - a throwaway bench database
) -> tuple[uuid.UUID, str]:
    """Create a workspace with its owner and history; returns (workspace id, owner email)."""
    rng = random.Random(seed)
    now = clock.now()
    email = f"owner-{uuid.uuid4().hex[:8]}@bench.example"
    with transaction(sessions) as session:
        workspace = auth.create_workspace(session, name="Bench Co")
        auth.create_user(
            session, email=email, password=password, workspace_id=workspace.id, role=Role.owner
        )
        costs.set_budget(session, workspace.id, scope="global", monthly_limit_eur=500.0)
        workspace_id = workspace.id
    types = [key for key, spec in registry.run_types.items() if not spec.requires_approval]
    written = 0
    while written < runs_count:
        with transaction(sessions) as session:
            for _ in range(min(batch, runs_count - written)):
                key = rng.choice(types)
                spec = registry.run_types[key]
                roll = rng.random()
                status = (
                    RunStatus.failed
                    if roll < 0.1
                    else RunStatus.cancelled
                    if roll < 0.13
                    else RunStatus.completed
                )
                created = now - timedelta(seconds=rng.uniform(60, days * 86400))
                runs.import_run_record(
                    session,
                    workspace_id,
                    registry,
                    run_type=key,
                    status=status,
                    created_at=created,
                    requested_via="bench",
                    platform_key=rng.choice(PLATFORMS) if rng.random() < 0.4 else None,
                    executive_summary=_SUMMARY * 2 if status == RunStatus.completed else None,
                    error="model provider failed: HTTP 503" if status == RunStatus.failed else None,
                    tokens_in=rng.randint(2000, 9000),
                    tokens_out=rng.randint(400, 1800),
                    actual_cost=round(spec.estimated_cost_eur * rng.uniform(0.5, 1.3), 4),
                    duration_ms=rng.randint(2000, 90_000),
                    model_used=spec.model,
                )
                written += 1
    # import_run_record writes one log line per run; the rest are other events.
    remaining = max(0, logs_count - runs_count)
    while remaining:
        with transaction(sessions) as session:
            for _ in range(min(batch * 4, remaining)):
                level = rng.choice(_LEVELS)
                logs.create_log(
                    session,
                    message=f"bench.event.{rng.randint(1, 40)}",
                    level=level,
                    source=rng.choice(_SOURCES),
                    workspace_id=workspace_id,
                    metadata={"n": rng.randint(1, 1000), "note": "benchmark data"},
                    created_at=now - timedelta(seconds=rng.uniform(1, days * 86400)),
                )
                remaining -= 1
    return workspace_id, email
