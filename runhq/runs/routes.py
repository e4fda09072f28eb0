"""/api/v1/runs: create, list, read, approve, reject, retry, cancel."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import AwareDatetime

from runhq.runs import service
from runhq.runs.models import RunStatus
from runhq.runs.schemas import (
    ApprovalOut,
    DecisionIn,
    PlanIn,
    RejectIn,
    RunCreate,
    RunDetail,
    RunOut,
    RunPage,
)
from runhq.web.deps import ActorDep, RuntimeDep, SessionDep
from runhq.web.errors import ERROR_RESPONSES, ErrorResponse

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERROR_RESPONSES)


@router.post(
    "",
    response_model=RunOut,
    status_code=status.HTTP_201_CREATED,
    summary="Start a run",
    responses={
        200: {
            "description": "Idempotent replay: the run this key already created",
            "model": RunOut,
        },
        402: {"description": "Over the monthly budget", "model": ErrorResponse},
    },
)
def create_run(
    body: RunCreate,
    response: Response,
    runtime: RuntimeDep,
    session: SessionDep,
    actor: ActorDep,
) -> RunOut:
    run, created = service.create_run(
        session,
        actor,
        runtime.registry,
        run_type=body.run_type,
        platform_key=body.platform_key,
        params=body.params,
        idempotency_key=body.idempotency_key,
        stuck_after=runtime.stuck_after,
        tz=runtime.settings.timezone,
        notify=runtime.notify,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return RunOut.model_validate(run)


@router.get("", response_model=RunPage, summary="List runs, newest first")
def list_runs(
    runtime: RuntimeDep,
    session: SessionDep,
    actor: ActorDep,
    status_: Annotated[list[RunStatus] | None, Query(alias="status")] = None,
    run_type: str | None = None,
    agent: str | None = None,
    platform_key: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunPage:
    if run_type:
        runtime.registry.get(run_type)  # 400 listing the valid types
    rows, next_cursor = service.list_runs(
        session,
        actor,
        status=status_,
        run_type=run_type,
        agent=agent,
        platform_key=platform_key,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return RunPage(items=[RunOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunDetail, summary="One run with its facts and output")
def get_run(run_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RunDetail:
    run = service.get_run(session, actor, run_id)
    approvals = [ApprovalOut.model_validate(a) for a in service.list_approvals(session, run)]
    return RunDetail.model_validate(
        {
            **RunOut.model_validate(run).model_dump(),
            "context": run.context,
            "prompt": run.prompt,
            "price": run.price,
            "approvals": approvals,
        }
    )


@router.post("/{run_id}/approve", response_model=RunOut, summary="Approve a gated run (owner)")
def approve_run(
    run_id: uuid.UUID,
    runtime: RuntimeDep,
    session: SessionDep,
    actor: ActorDep,
    body: Annotated[DecisionIn | None, Body()] = None,
) -> RunOut:
    run = service.approve_run(
        session,
        actor,
        run_id,
        reason=body.reason if body else None,
        notify=runtime.notify,
        plan_hash=body.plan_hash if body else None,
        ttl=timedelta(hours=runtime.settings.approval_ttl_hours),
    )
    return RunOut.model_validate(run)


@router.put(
    "/{run_id}/plan",
    response_model=RunOut,
    summary="Edit an action run's plan (admin): it needs a new approval",
)
def update_plan(run_id: uuid.UUID, body: PlanIn, session: SessionDep, actor: ActorDep) -> RunOut:
    return RunOut.model_validate(service.update_plan(session, actor, run_id, body.plan))


@router.post("/{run_id}/reject", response_model=RunOut, summary="Reject a gated run (owner)")
def reject_run(run_id: uuid.UUID, body: RejectIn, session: SessionDep, actor: ActorDep) -> RunOut:
    return RunOut.model_validate(service.reject_run(session, actor, run_id, reason=body.reason))


@router.post(
    "/{run_id}/retry",
    response_model=RunOut,
    status_code=status.HTTP_201_CREATED,
    summary="Retry a failed or cancelled run (a new run linked to it)",
)
def retry_run(
    run_id: uuid.UUID, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
) -> RunOut:
    run = service.retry_run(
        session,
        actor,
        runtime.registry,
        run_id,
        stuck_after=runtime.stuck_after,
        tz=runtime.settings.timezone,
        notify=runtime.notify,
    )
    return RunOut.model_validate(run)


@router.post("/{run_id}/cancel", response_model=RunOut, summary="Cancel a run")
def cancel_run(run_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RunOut:
    return RunOut.model_validate(service.cancel_run(session, actor, run_id))
