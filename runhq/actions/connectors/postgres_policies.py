"""RLS_POLICY_UPDATE's act: run the approved policy SQL on a PostgreSQL database, in one
transaction, and record ``pg_policies`` of the table before and after."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import dict_row

from runhq.actions.connectors.base import ActionFailed, ActionResult

# Only row-level-security statements: this connector is not a general SQL runner.
_ALLOWED = re.compile(
    r"^\s*(CREATE\s+POLICY|ALTER\s+POLICY|DROP\s+POLICY|"
    r"ALTER\s+TABLE\s+[\w.\"]+\s+(ENABLE|DISABLE|FORCE|NO\s+FORCE)\s+ROW\s+LEVEL\s+SECURITY)\b",
    re.IGNORECASE,
)


def split_statements(sql: str) -> list[str]:
    """Statements separated by ';' (policy SQL has no procedural bodies)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


def check_policy_sql(sql: str) -> list[str]:
    statements = split_statements(sql)
    if not statements:
        raise ActionFailed("the plan has no SQL", retryable=False)
    for statement in statements:
        if not _ALLOWED.match(statement):
            raise ActionFailed(
                f"only row-level-security statements are allowed, not: {statement[:80]!r}",
                retryable=False,
            )
    return statements


def _policies(cur: psycopg.Cursor[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    schema, _, name = table.rpartition(".")
    cur.execute(
        "SELECT policyname, cmd, permissive, roles::text[] AS roles, qual, with_check "
        "FROM pg_policies WHERE tablename = %s AND schemaname = %s ORDER BY policyname",
        (name, schema or "public"),
    )
    return [dict(row) for row in cur.fetchall()]


def apply_policies(dsn: str, *, table: str, sql: str) -> ActionResult:
    statements = check_policy_sql(sql)
    try:
        with (
            psycopg.connect(dsn, connect_timeout=10) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            before = _policies(cur, table)
            for statement in statements:
                cur.execute(statement.encode())
            after = _policies(cur, table)
            conn.commit()
    except psycopg.OperationalError as exc:
        raise ActionFailed(
            f"could not reach the database: {type(exc).__name__}", retryable=True
        ) from None
    except psycopg.Error as exc:  # the transaction was rolled back: nothing changed
        raise ActionFailed(
            f"PostgreSQL refused the SQL (rolled back): {str(exc).splitlines()[0][:300]}",
            retryable=False,
        ) from None
    return ActionResult(
        ok=True,
        summary=f"{len(statements)} statement(s) applied on {table}: "
        f"{len(before)} → {len(after)} policies",
        details={"table": table, "statements": statements, "before": before, "after": after},
    )
