"""/api/v1/logs: query and purge the structured logs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from runhq.auth.models import Role
from runhq.auth.service import require_role
from runhq.logs import service
from runhq.logs.schemas import LogLevel, LogOut, LogPage, PurgeResult
from runhq.web.deps import ActorDep, RuntimeDep, SessionDep
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/logs", tags=["logs"], responses=ERROR_RESPONSES)


@router.get("", response_model=LogPage, summary="Structured logs, newest first")
def list_logs(
    session: SessionDep,
    actor: ActorDep,
    level: LogLevel | None = None,
    source: Annotated[str | None, Query(max_length=50)] = None,
    run_id: uuid.UUID | None = None,
    since: AwareDatetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LogPage:
    rows, next_cursor = service.list_logs(
        session,
        workspace_id=actor.workspace_id,
        level=level,
        source=source,
        run_id=run_id,
        since=since,
        cursor=cursor,
        limit=limit,
    )
    return LogPage(items=[LogOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/purge", response_model=PurgeResult, summary="Delete logs past the retention")
def purge_logs(
    runtime: RuntimeDep,
    session: SessionDep,
    actor: ActorDep,
    older_than_days: Annotated[int | None, Query(ge=1, le=3650)] = None,
) -> PurgeResult:
    require_role(actor, Role.owner, "purging logs")
    deleted, cutoff = service.purge_logs(
        session,
        older_than_days=older_than_days or runtime.settings.log_retention_days,
        workspace_id=actor.workspace_id,
    )
    return PurgeResult(deleted=deleted, older_than=cutoff)
