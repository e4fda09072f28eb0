"""The only writer of platforms, health checks and incidents.

A check GETs each health URL; a platform check fails if any URL fails (status, body or
network). ``failure_threshold`` consecutive failed checks open an incident; the first
successful check closes it. Uptime is the share of successful URL checks in a window.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy import bindparam, case, delete, func, or_, select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.auth.service import require_role
from runhq.errors import AlreadyExists, InvalidInput, NotFound
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.platforms.models import HealthCheck, Incident, Platform
from runhq.platforms.schemas import DeployTarget

_REQUIRED = frozenset(
    {
        "name",
        "health_urls",
        "expected_status",
        "check_interval_seconds",
        "check_timeout_seconds",
        "failure_threshold",
        "environment",
        "deploy_target",
    }
)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


REDACTED = "(hidden: admins only)"


def get_visible_deploy_target(platform: Platform, actor: Actor) -> dict[str, Any]:
    """The platform's deploy target as ``actor`` may see it: whole for admins and owners
    (they configure it); for other roles, URLs cut to scheme and host (webhook URLs often
    carry a token in their path or query) and every other value hidden but its kind."""
    if actor.has_at_least(Role.admin):
        return dict(platform.deploy_target)
    visible: dict[str, Any] = {}
    for name, value in platform.deploy_target.items():
        if name in ("kind", "type"):
            visible[name] = value
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            parts = urlsplit(value)
            visible[name] = f"{parts.scheme}://{parts.hostname or ''}/…"
        else:
            visible[name] = REDACTED
    return visible


def create_platform(session: Session, actor: Actor, **fields: Any) -> Platform:
    require_role(actor, Role.admin, "adding a platform")
    key = fields["key"]
    if session.scalar(
        select(Platform.id).where(Platform.workspace_id == actor.workspace_id, Platform.key == key)
    ):
        raise AlreadyExists(f"a platform with key {key!r} already exists", details={"field": "key"})
    now = clock.now()
    fields["health_urls"] = [str(u) for u in fields.get("health_urls", [])]
    fields["deploy_target"] = check_deploy_target(fields.get("deploy_target") or {})
    platform = Platform(workspace_id=actor.workspace_id, created_at=now, updated_at=now, **fields)
    session.add(platform)
    session.flush()
    return platform


def get_platform(session: Session, workspace_id: uuid.UUID, key: str) -> Platform:
    platform = session.scalar(
        select(Platform).where(Platform.workspace_id == workspace_id, Platform.key == key)
    )
    if platform is None:
        raise NotFound(f"no platform {key!r}")
    return platform


# Read by every run's context (the platforms fact): built once.
_LIST_PLATFORMS = (
    select(Platform)
    .where(Platform.workspace_id == bindparam("workspace_id"))
    .order_by(Platform.key)
)


def list_platforms(session: Session, workspace_id: uuid.UUID) -> list[Platform]:
    return list(session.scalars(_LIST_PLATFORMS, {"workspace_id": workspace_id}))


def check_deploy_target(value: dict[str, Any]) -> dict[str, Any]:
    """The deploy target as stored (its given fields), or 422 naming what is wrong with it:
    a target that cannot work is refused when it is configured, not when a deploy runs."""
    try:
        target = DeployTarget.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("deploy_target", *first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{where}: {message}", details={"field": where}) from None
    return target.model_dump(exclude_none=True)


def update_platform(session: Session, actor: Actor, key: str, changes: dict[str, Any]) -> Platform:
    require_role(actor, Role.admin, "changing a platform")
    platform = get_platform(session, actor.workspace_id, key)
    for name, value in changes.items():
        if value is None and name in _REQUIRED:
            raise InvalidInput(f"{name} cannot be null", details={"field": name})
    if "health_urls" in changes and changes["health_urls"] is not None:
        changes["health_urls"] = [str(u) for u in changes["health_urls"]]
    if "deploy_target" in changes:
        changes["deploy_target"] = check_deploy_target(changes["deploy_target"] or {})
    for name, value in changes.items():
        setattr(platform, name, value)
    platform.updated_at = clock.now()
    return platform


def delete_platform(session: Session, actor: Actor, key: str) -> None:
    require_role(actor, Role.admin, "deleting a platform")
    session.delete(get_platform(session, actor.workspace_id, key))


# --- checks ---------------------------------------------------------------------------------


def probe(client: httpx.Client, platform: Platform, url: str) -> dict[str, Any]:
    """One HTTP GET against a health URL; never raises."""
    start = time.monotonic()
    try:
        response = client.get(url, timeout=platform.check_timeout_seconds)
    except httpx.HTTPError as exc:
        return {
            "ok": False,
            "status_code": None,
            "latency_ms": None,
            "error": f"{type(exc).__name__}: {str(exc)[:200]}",
        }
    latency = int((time.monotonic() - start) * 1000)
    error = None
    if response.status_code != platform.expected_status:
        error = f"HTTP {response.status_code} (expected {platform.expected_status})"
    elif platform.expected_body and platform.expected_body not in response.text:
        error = f"body does not contain {platform.expected_body!r}"
    return {
        "ok": error is None,
        "status_code": response.status_code,
        "latency_ms": latency,
        "error": error,
    }


def record_check(
    session: Session, platform: Platform, results: list[tuple[str, dict[str, Any]]]
) -> Incident | None:
    """Store one platform check (one row per URL) and open/close incidents; returns the
    incident opened or closed by this check, if any."""
    now = clock.now()
    for url, result in results:
        session.add(
            HealthCheck(
                workspace_id=platform.workspace_id,
                platform_id=platform.id,
                url=url,
                checked_at=now,
                **result,
            )
        )
    platform.last_checked_at = now
    failed = [r for _, r in results if not r["ok"]]
    open_incident = get_open_incident(session, platform.id)
    if failed:
        platform.consecutive_failures += 1
        if open_incident is None and platform.consecutive_failures >= platform.failure_threshold:
            reason = "; ".join(sorted({r["error"] or "failed" for r in failed}))
            incident = Incident(
                workspace_id=platform.workspace_id,
                platform_id=platform.id,
                reason=reason,
                failures=platform.consecutive_failures,
                opened_at=now,
            )
            session.add(incident)
            session.flush()
            logs.create_log(
                session,
                message="platform.incident_opened",
                level=LogLevel.error,
                source=LogSource.health,
                workspace_id=platform.workspace_id,
                metadata={
                    "platform_key": platform.key,
                    "incident_id": str(incident.id),
                    "reason": reason,
                    "consecutive_failures": incident.failures,
                },
            )
            return incident
        if open_incident is not None:
            open_incident.failures = platform.consecutive_failures
        return None
    platform.consecutive_failures = 0
    if open_incident is not None:
        open_incident.closed_at = now
        logs.create_log(
            session,
            message="platform.incident_closed",
            source=LogSource.health,
            workspace_id=platform.workspace_id,
            metadata={
                "platform_key": platform.key,
                "incident_id": str(open_incident.id),
                "duration_s": int((now - open_incident.opened_at).total_seconds()),
            },
        )
        return open_incident
    return None


def probe_platform(client: httpx.Client, platform: Platform) -> list[tuple[str, dict[str, Any]]]:
    """Probe each of the platform's health URLs; no database access (call it outside any
    transaction: a slow endpoint must not hold SQLite's write lock)."""
    return [(url, probe(client, platform, url)) for url in platform.health_urls]


def check_platform(session: Session, client: httpx.Client, platform: Platform) -> Incident | None:
    """Probe and record in the caller's transaction (an on-demand check of one platform)."""
    results = probe_platform(client, platform)
    if not results:
        return None
    return record_check(session, platform, results)


def list_due_checks(session: Session, *, limit: int = 100) -> list[Platform]:
    """Platforms with health URLs whose interval has elapsed (oldest first)."""
    now = clock.now()
    rows = session.scalars(
        select(Platform)
        .where(or_(Platform.last_checked_at.is_(None), Platform.last_checked_at <= now))
        .order_by(Platform.last_checked_at.is_not(None), Platform.last_checked_at)
        .limit(limit * 4)
    ).all()
    due = [
        p
        for p in rows
        if p.health_urls
        and (
            p.last_checked_at is None
            or p.last_checked_at + timedelta(seconds=p.check_interval_seconds) <= now
        )
    ]
    return due[:limit]


def get_open_incident(session: Session, platform_id: uuid.UUID) -> Incident | None:
    return session.scalar(
        select(Incident).where(Incident.platform_id == platform_id, Incident.closed_at.is_(None))
    )


def list_open_incidents(
    session: Session, platform_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Incident]:
    """Each platform's open incident, if it has one — one query for all platforms."""
    if not platform_ids:
        return {}
    return {
        incident.platform_id: incident
        for incident in session.scalars(
            select(Incident).where(
                Incident.platform_id.in_(platform_ids), Incident.closed_at.is_(None)
            )
        )
    }


def list_recent_incidents(
    session: Session, platform_ids: list[uuid.UUID], *, per_platform: int
) -> dict[uuid.UUID, list[Incident]]:
    """Each platform's latest ``per_platform`` incidents, newest first — one query for all."""
    if not platform_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=Incident.platform_id,
            order_by=(Incident.opened_at.desc(), Incident.id.desc()),
        )
        .label("rank")
    )
    ranked = select(Incident.id, rank).where(Incident.platform_id.in_(platform_ids)).subquery()
    found: dict[uuid.UUID, list[Incident]] = {pid: [] for pid in platform_ids}
    for incident in session.scalars(
        select(Incident)
        .join(ranked, ranked.c.id == Incident.id)
        .where(ranked.c.rank <= per_platform)
        .order_by(Incident.platform_id, Incident.opened_at.desc(), Incident.id.desc())
    ):
        found[incident.platform_id].append(incident)
    return found


def list_incidents(session: Session, platform: Platform, *, limit: int = 50) -> list[Incident]:
    return list(
        session.scalars(
            select(Incident)
            .where(Incident.platform_id == platform.id)
            .order_by(Incident.opened_at.desc())
            .limit(limit)
        )
    )


def list_checks(session: Session, platform: Platform, *, limit: int = 50) -> list[HealthCheck]:
    return list(
        session.scalars(
            select(HealthCheck)
            .where(HealthCheck.platform_id == platform.id)
            .order_by(HealthCheck.checked_at.desc())
            .limit(limit)
        )
    )


def purge_checks(session: Session, *, older_than: timedelta) -> int:
    """Forget health-check results older than ``older_than`` (every workspace); incidents,
    which say what happened, are kept."""
    result = session.execute(
        delete(HealthCheck).where(HealthCheck.checked_at < clock.now() - older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def get_uptime(
    session: Session, platform_ids: list[uuid.UUID], since: datetime
) -> dict[uuid.UUID, tuple[int, int]]:
    """(checks, ok) per platform since ``since`` — one query for all platforms."""
    rows = session.execute(
        select(
            HealthCheck.platform_id,
            func.count(HealthCheck.id),
            func.sum(case((HealthCheck.ok.is_(True), 1), else_=0)),
        )
        .where(HealthCheck.platform_id.in_(platform_ids), HealthCheck.checked_at >= since)
        .group_by(HealthCheck.platform_id)
    ).all()
    return {pid: (int(n), int(ok or 0)) for pid, n, ok in rows}


def get_average_uptime(
    session: Session, workspace_id: uuid.UUID, window: str = "24h"
) -> float | None:
    """The Briefing Room's uptime: the average of the platforms' uptimes ("Moyenne")."""
    platforms = list_platforms(session, workspace_id)
    stats = get_uptime(session, [p.id for p in platforms], clock.now() - WINDOWS[window])
    ratios = [ok / n for n, ok in stats.values() if n]
    return sum(ratios) / len(ratios) if ratios else None
