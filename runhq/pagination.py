"""Keyset pagination over (created_at, id), newest first: stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from runhq.errors import InvalidInput

MAX_LIMIT = 500


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, row_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        parsed = datetime.fromisoformat(stamp)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid: pass back the next_cursor of a previous page",
            details={"field": "cursor", "reason": "cursor"},
        ) from None


def paginate(
    stmt: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    *,
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Order newest first and start after ``cursor``; fetch ``limit + 1`` to detect more."""
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(created_at < stamp, and_(created_at == stamp, row_id < last_id)))
    return stmt.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def fetch_page(
    session: Session,
    stmt: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """One page of ``stmt`` (newest first) and the cursor of the next one (None: last)."""
    rows = list(session.scalars(paginate(stmt, created_at, row_id, cursor=cursor, limit=limit)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, created_at.key), getattr(last, row_id.key))
