"""The only writer of ``structured_logs``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack, cast

from sqlalchemy import (
    CTE,
    Connection,
    Insert,
    Integer,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session

from runhq import clock
from runhq.db.base import new_id
from runhq.db.compiled import Compiled
from runhq.logs.models import StructuredLog
from runhq.logs.schemas import LogLevel, LogSource
from runhq.pagination import decode_cursor, encode_cursor, fetch_page

# Built once, on the table (Core, not the ORM's bulk path); parameters are bound per call,
# so the statement's cache key and compiled form are computed once per process.
_TABLE = cast(Table, StructuredLog.__table__)
_INSERT = insert(_TABLE)


class LogLine(TypedDict, total=False):
    """What a log line says; only the message is required."""

    message: Required[str]
    level: LogLevel  # default info
    source: LogSource  # default system
    workspace_id: uuid.UUID | None
    run_id: uuid.UUID | None
    metadata: dict[str, Any] | None
    created_at: datetime | None  # default now


def build_log_row(**line: Unpack[LogLine]) -> dict[str, Any]:
    """A log line's column values, for ``create_log_row`` or ``insert_log_after``."""
    return {
        "id": new_id(),
        "workspace_id": line.get("workspace_id"),
        "level": line.get("level", LogLevel.info).value,
        "source": line.get("source", LogSource.system).value,
        "message": line["message"],
        "metadata": line.get("metadata") or {},
        "run_id": line.get("run_id"),
        "created_at": line.get("created_at") or clock.now(),
    }


def create_log(session: Session | Connection, **line: Unpack[LogLine]) -> uuid.UUID:
    """Add a log line to the caller's transaction (it commits with the change it describes).

    A plain INSERT, not a unit-of-work object: log lines are never read back or updated in
    the transaction that writes them, and this is on every run's hot path.
    """
    return create_log_row(session, build_log_row(**line))


_INSERT_COMPILED = Compiled(_INSERT)


def create_log_row(session: Session | Connection, row: dict[str, Any]) -> uuid.UUID:
    """Insert a line built by ``build_log_row`` in the caller's transaction."""
    # A line on every transition: on SQLite sent on the DBAPI cursor (ADR 0015).
    _INSERT_COMPILED.rowcount(
        session if isinstance(session, Connection) else session.connection(), row
    )
    return cast(uuid.UUID, row["id"])


# Bound parameters of ``insert_log_after``: prefixed, so they never collide with those of the
# statement the log line is attached to.
LOG_PARAM_PREFIX = "log_"


def insert_log_after(change: CTE) -> Insert:
    """``INSERT INTO structured_logs … SELECT <log line> FROM change``: the log line of a
    data-modifying CTE (PostgreSQL) in the same statement, written only if the CTE returned a
    row. Its parameters are ``build_log_row``'s, prefixed with ``LOG_PARAM_PREFIX``; its
    rowcount says whether the change happened."""
    columns = list(_TABLE.c)  # every column is one of build_log_row's
    values = select(
        *(bindparam(LOG_PARAM_PREFIX + c.name, type_=c.type) for c in columns)
    ).select_from(change)
    # SQLAlchemy keeps an INSERT's rowcount only when asked.
    return insert(_TABLE).from_select(columns, values).execution_options(preserve_rowcount=True)


def log_params(row: dict[str, Any]) -> dict[str, Any]:
    """``build_log_row``'s values as ``insert_log_after``'s parameters."""
    return {LOG_PARAM_PREFIX + key: value for key, value in row.items()}


def _filtered(
    workspace_id: uuid.UUID,
    level: LogLevel | None,
    source: str | None,
    run_id: uuid.UUID | None,
    since: datetime | None,
) -> Select[tuple[StructuredLog]]:
    stmt = select(StructuredLog).where(StructuredLog.workspace_id == workspace_id)
    if level is not None:
        stmt = stmt.where(StructuredLog.level == level.value)
    if source:
        stmt = stmt.where(StructuredLog.source == source)
    if run_id is not None:
        stmt = stmt.where(StructuredLog.run_id == run_id)
    if since is not None:
        stmt = stmt.where(StructuredLog.created_at >= since)
    return stmt


def list_logs(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    level: LogLevel | None = None,
    source: str | None = None,
    run_id: uuid.UUID | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[StructuredLog], str | None]:
    """Newest first, filtered; returns the page and the cursor of the next one."""
    stmt = _filtered(workspace_id, level, source, run_id, since)
    if cursor:
        # Redundant with the cursor's own condition (an OR the index cannot use), but a range
        # the index can: a deep page starts at its place instead of scanning every newer line.
        stmt = stmt.where(StructuredLog.created_at <= decode_cursor(cursor)[0])
    return fetch_page(
        session, stmt, StructuredLog.created_at, StructuredLog.id, cursor=cursor, limit=limit
    )


def log_cursor(line: StructuredLog) -> str:
    """The keyset cursor of a line: ``list_logs`` continues after it (older lines),
    ``list_logs_after`` after it the other way (newer lines)."""
    return encode_cursor(line.created_at, line.id)


def list_logs_after(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    after: str | None,
    level: LogLevel | None = None,
    source: str | None = None,
    run_id: uuid.UUID | None = None,
    limit: int = 100,
) -> tuple[list[StructuredLog], bool]:
    """The lines newer than the line whose cursor is ``after`` (all of them when None), oldest
    first, at most ``limit``; and whether more remain (ask again after the last one).

    A live tail: the caller shows these above the lines it has and passes the newest one's
    cursor next time. ``after`` comes from ``log_cursor`` (``InvalidInput`` if malformed).
    """
    stmt = _filtered(workspace_id, level, source, run_id, None)
    if after:
        stamp, last_id = decode_cursor(after)
        # The first condition is the index range; the second settles lines of the same instant.
        stmt = stmt.where(
            StructuredLog.created_at >= stamp,
            or_(StructuredLog.created_at > stamp, StructuredLog.id > last_id),
        )
    stmt = stmt.order_by(StructuredLog.created_at.asc(), StructuredLog.id.asc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    return rows[:limit], len(rows) > limit


def purge_logs(
    session: Session, *, older_than_days: int, workspace_id: uuid.UUID | None = None
) -> tuple[int, datetime]:
    """Delete log lines older than the retention; returns (count, cutoff).

    ``workspace_id``: only that workspace's lines (an owner's request); None: every
    workspace's (the retention job and the local CLI).
    """
    cutoff = clock.now() - timedelta(days=older_than_days)
    stmt = delete(StructuredLog).where(StructuredLog.created_at < cutoff)
    if workspace_id is not None:
        stmt = stmt.where(StructuredLog.workspace_id == workspace_id)
    result = session.execute(stmt)
    deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if deleted:
        create_log(
            session,
            workspace_id=workspace_id,
            message="logs.purged",
            metadata={"deleted": deleted, "older_than": cutoff.isoformat()},
        )
    return deleted, cutoff


def count_by_source_level(
    session: Session, workspace_id: uuid.UUID, *, since: datetime
) -> list[tuple[str, str, int]]:
    """(source, level, count) of log lines since ``since``."""
    rows = session.execute(
        _COUNT_BY_SOURCE_LEVEL, {"workspace_id": workspace_id, "since": since}
    ).all()
    return [(source, level, int(n)) for source, level, n in rows]


def list_recent_errors(
    session: Session, workspace_id: uuid.UUID, *, since: datetime, limit: int = 10
) -> list[StructuredLog]:
    return list(
        session.scalars(
            _RECENT_ERRORS, {"workspace_id": workspace_id, "since": since, "limit": limit}
        )
    )


# Read by every run's context: built once, parameters bound per call.
_SINCE = (
    StructuredLog.workspace_id == bindparam("workspace_id"),
    StructuredLog.created_at >= bindparam("since"),
)
_COUNT_BY_SOURCE_LEVEL = (
    select(StructuredLog.source, StructuredLog.level, func.count(StructuredLog.id))
    .where(*_SINCE)
    .group_by(StructuredLog.source, StructuredLog.level)
    .order_by(StructuredLog.source, StructuredLog.level)
)
_RECENT_ERRORS = (
    select(StructuredLog)
    .where(*_SINCE, StructuredLog.level == "error")
    .order_by(StructuredLog.created_at.desc())
    .limit(bindparam("limit", type_=Integer))
)
