"""/api/v1/platforms: the registry, checks, incidents, uptime."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.auth.service import require_role
from runhq.platforms import service
from runhq.platforms.models import Platform
from runhq.platforms.schemas import (
    CheckOut,
    IncidentOut,
    PlatformIn,
    PlatformOut,
    PlatformUpdate,
    Uptime,
)
from runhq.web.deps import ActorDep, SessionDep
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/platforms", tags=["platforms"], responses=ERROR_RESPONSES)


def to_out(session: Session, actor: Actor, platforms: list[Platform]) -> list[PlatformOut]:
    """Platforms with status, open incident and uptime, as ``actor`` may see them: a fixed
    number of queries."""
    ids = [p.id for p in platforms]
    now = clock.now()
    uptimes = {w: service.get_uptime(session, ids, now - d) for w, d in service.WINDOWS.items()}
    open_incidents = service.list_open_incidents(session, ids)
    out = []
    for p in platforms:
        incident = open_incidents.get(p.id)
        windows = []
        for w in service.WINDOWS:
            n, ok = uptimes[w].get(p.id, (0, 0))
            windows.append(
                Uptime(window=w, checks=n, ok=ok, uptime=round(ok / n, 4) if n else None)
            )
        if incident is not None:
            state = "down"
        elif p.last_checked_at is None:
            state = "unknown"
        elif p.consecutive_failures:
            state = "degraded"
        else:
            state = "up"
        out.append(
            PlatformOut(
                id=p.id,
                key=p.key,
                name=p.name,
                health_urls=p.health_urls,
                expected_status=p.expected_status,
                expected_body=p.expected_body,
                check_interval_seconds=p.check_interval_seconds,
                check_timeout_seconds=p.check_timeout_seconds,
                failure_threshold=p.failure_threshold,
                repository=p.repository,
                environment=p.environment,
                deploy_target=service.get_visible_deploy_target(p, actor),
                owner_contact=p.owner_contact,
                status=state,
                last_checked_at=p.last_checked_at,
                open_incident=IncidentOut.model_validate(incident) if incident else None,
                uptime=windows,
            )
        )
    return out


@router.get("", response_model=list[PlatformOut], summary="Platforms with status and uptime")
def list_platforms(session: SessionDep, actor: ActorDep) -> list[PlatformOut]:
    return to_out(session, actor, service.list_platforms(session, actor.workspace_id))


@router.post(
    "",
    response_model=PlatformOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a platform (admin)",
)
def create_platform(body: PlatformIn, session: SessionDep, actor: ActorDep) -> PlatformOut:
    platform = service.create_platform(session, actor, **body.model_dump())
    return to_out(session, actor, [platform])[0]


@router.get("/{key}", response_model=PlatformOut, summary="One platform")
def get_platform(key: str, session: SessionDep, actor: ActorDep) -> PlatformOut:
    return to_out(session, actor, [service.get_platform(session, actor.workspace_id, key)])[0]


@router.patch("/{key}", response_model=PlatformOut, summary="Change a platform (admin)")
def update_platform(
    key: str, body: PlatformUpdate, session: SessionDep, actor: ActorDep
) -> PlatformOut:
    platform = service.update_platform(session, actor, key, body.model_dump(exclude_unset=True))
    return to_out(session, actor, [platform])[0]


@router.delete(
    "/{key}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a platform (admin)"
)
def delete_platform(key: str, session: SessionDep, actor: ActorDep) -> Response:
    service.delete_platform(session, actor, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{key}/check", response_model=PlatformOut, summary="Check the platform now")
def check_now(key: str, session: SessionDep, actor: ActorDep) -> PlatformOut:
    require_role(actor, Role.operator, "checking a platform")
    platform = service.get_platform(session, actor.workspace_id, key)
    # End the request's reads before probing: a slow endpoint must not hold the database
    # (SQLite's write lock) for its whole timeout. The result is written in a new transaction,
    # committed by the request as usual.
    session.commit()
    with httpx.Client(headers={"User-Agent": "runhq-health"}) as client:
        results = service.probe_platform(client, platform)
    if results:
        service.record_check(session, platform, results)
    return to_out(session, actor, [platform])[0]


@router.get("/{key}/checks", response_model=list[CheckOut], summary="Latest check results")
def list_checks(key: str, session: SessionDep, actor: ActorDep) -> list[CheckOut]:
    platform = service.get_platform(session, actor.workspace_id, key)
    return [CheckOut.model_validate(c) for c in service.list_checks(session, platform)]


@router.get("/{key}/incidents", response_model=list[IncidentOut], summary="Incidents")
def list_incidents(key: str, session: SessionDep, actor: ActorDep) -> list[IncidentOut]:
    platform = service.get_platform(session, actor.workspace_id, key)
    return [IncidentOut.model_validate(i) for i in service.list_incidents(session, platform)]
