"""/api/v1/schedules and /api/v1/autopilot."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from runhq.scheduler import autopilot, service
from runhq.scheduler.models import AutopilotSettings, Schedule
from runhq.scheduler.schemas import (
    AutopilotIn,
    AutopilotOut,
    DecisionPage,
    ScheduleIn,
    ScheduleOut,
    ScheduleUpdate,
)
from runhq.web.deps import ActorDep, RuntimeDep, SessionDep
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(tags=["schedules"], responses=ERROR_RESPONSES)


def _out(schedule: Schedule) -> ScheduleOut:
    return ScheduleOut.model_validate(
        {
            **{c: getattr(schedule, c) for c in ScheduleOut.model_fields if c != "next_firings"},
            "next_firings": service.get_next_firings(schedule),
        }
    )


@router.get("/schedules", response_model=list[ScheduleOut], summary="Schedules and next firings")
def list_schedules(session: SessionDep, actor: ActorDep) -> list[ScheduleOut]:
    return [_out(s) for s in service.list_schedules(session, actor.workspace_id)]


@router.post(
    "/schedules",
    response_model=ScheduleOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a schedule (admin)",
)
def create_schedule(
    body: ScheduleIn, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
) -> ScheduleOut:
    schedule = service.create_schedule(session, actor, runtime.registry, **body.model_dump())
    return _out(schedule)


@router.get("/schedules/{job_key}", response_model=ScheduleOut, summary="One schedule")
def get_schedule(job_key: str, session: SessionDep, actor: ActorDep) -> ScheduleOut:
    return _out(service.get_schedule(session, actor, job_key))


@router.patch(
    "/schedules/{job_key}", response_model=ScheduleOut, summary="Change a schedule (admin)"
)
def update_schedule(
    job_key: str, body: ScheduleUpdate, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
) -> ScheduleOut:
    changes = body.model_dump(exclude_unset=True)
    return _out(service.update_schedule(session, actor, runtime.registry, job_key, changes))


@router.delete(
    "/schedules/{job_key}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a schedule (admin)",
)
def delete_schedule(job_key: str, session: SessionDep, actor: ActorDep) -> Response:
    service.delete_schedule(session, actor, job_key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _autopilot_out(runtime: RuntimeDep, row: AutopilotSettings) -> AutopilotOut:
    return AutopilotOut(
        enabled=row.enabled,
        interval_minutes=row.interval_minutes,
        mode="deterministic" if runtime.gateway.offline else "model",
        last_cycle_at=row.last_cycle_at,
        next_cycle_at=row.next_cycle_at,
    )


@router.get(
    "/autopilot", response_model=AutopilotOut, tags=["autopilot"], summary="Autopilot status"
)
def get_autopilot(runtime: RuntimeDep, session: SessionDep, actor: ActorDep) -> AutopilotOut:
    row = autopilot.get_autopilot(
        session, actor.workspace_id, runtime.settings.autopilot_interval_minutes
    )
    return _autopilot_out(runtime, row)


@router.put(
    "/autopilot",
    response_model=AutopilotOut,
    tags=["autopilot"],
    summary="Switch the autopilot on or off (admin)",
)
def set_autopilot(
    body: AutopilotIn, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
) -> AutopilotOut:
    row = autopilot.set_autopilot(
        session,
        actor,
        enabled=body.enabled,
        interval_minutes=body.interval_minutes,
        default_interval=runtime.settings.autopilot_interval_minutes,
    )
    return _autopilot_out(runtime, row)


@router.get(
    "/autopilot/decisions",
    response_model=DecisionPage,
    tags=["autopilot"],
    summary="The decision journal, newest first",
)
def list_decisions(
    session: SessionDep,
    actor: ActorDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    snapshot: Annotated[bool, Query(description="Include the state decided on.")] = False,
) -> DecisionPage:
    rows, next_cursor = autopilot.list_decisions(
        session, actor.workspace_id, cursor=cursor, limit=limit
    )
    items = [autopilot.read_decision(row, snapshot=snapshot) for row in rows]
    return DecisionPage(items=items, next_cursor=next_cursor)
