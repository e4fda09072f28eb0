"""Statements compiled once by SQLAlchemy and sent on the DBAPI cursor: the run's hot path.

``Connection.execute`` of a cached Core statement still costs about 20 µs of Python per call
beyond the driver's own work (an execution context, parameter and result wrappers): on SQLite
that is as much as the database's work for a small write, and a run sends eight such
statements. ``Compiled`` keeps what SQLAlchemy compiled for the dialect — the SQL, the order
of its parameters, its type processors (the same JSON, UUID and date conversions) — and sends
it on the cursor of the caller's SQLAlchemy ``Connection``, inside the transaction SQLAlchemy
manages (pool, ``BEGIN`` hook, commit, rollback). The engine's ``before_cursor_execute``
listeners still see each statement (query counts, echo), and a driver error is raised as the
``sqlalchemy.exc`` class SQLAlchemy would raise.

Sent this way on SQLite only (docs/adr/0015-compiled-statements-on-sqlite.md); on other
dialects the same calls go through ``Connection.execute``: on PostgreSQL the hot path is one
statement per step already (ADR 0014), round trips dominate, and SQLAlchemy's handling of a
dropped connection (invalidating the pool) is kept. Statements with expanding (``IN``) or
literal-execute parameters are refused when compiled for the cursor.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
_ROWCOUNT = {"preserve_rowcount": True}


class _Form:
    """One statement as compiled for one dialect."""

    __slots__ = ("sql", "plan", "fixed", "columns")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # noqa: S101 - a SQL statement
        if compiled.positiontup is None:
            raise TypeError(f"{dialect.name}: only positional parameter styles are supported")
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise TypeError("expanding or literal-execute parameters are not supported")
        self.sql: str = compiled.string
        processors = compiled._bind_processors
        # Each parameter in order: its name, its type's processor, and what that processor
        # makes of None, computed once (a JSON column's 'null' costs a json.dumps otherwise).
        self.plan: tuple[tuple[str, Processor, Any], ...] = tuple(
            (name, bind, bind(None) if bind is not None else None)
            for name, bind in (
                (name, _callable(processors.get(name))) for name in compiled.positiontup
            )
        )
        # Values fixed in the statement itself (``status == 'queued'``): bound as SQLAlchemy
        # would, unless the caller passes that name.
        self.fixed: dict[str, Any] = {
            name: bind.effective_value
            for bind, name in compiled.bind_names.items()
            if not bind.required
        }
        self.columns: tuple[tuple[str, Processor], ...] = tuple(
            (column[0], column[3]._cached_result_processor(dialect, None))
            for column in compiled._result_columns
        )

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = {**self.fixed, **params} if self.fixed else params
        bound = []
        try:
            for name, bind, none in self.plan:
                value = values[name]
                bound.append(value if bind is None else none if value is None else bind(value))
        except KeyError as missing:
            raise exc.ArgumentError(f"no value for the bound parameter {missing}") from None
        return tuple(bound)


def send_on_cursor(conn: Connection, sql: str, args: tuple[Any, ...] = ()) -> Any:
    """Send ``sql`` on a new DBAPI cursor of ``conn``, as SQLAlchemy would have: the engine's
    ``before_cursor_execute`` listeners see it, and a driver error is raised as its
    ``sqlalchemy.exc`` class. Returns the open cursor."""
    cursor = conn.connection.cursor()
    conn.dispatch.before_cursor_execute(conn, cursor, sql, args, None, False)
    try:
        cursor.execute(sql, args)
    except conn.dialect.loaded_dbapi.Error as error:
        cursor.close()
        raise driver_error(conn, sql, args, error) from error
    return cursor


def driver_error(
    conn: Connection, sql: str, args: tuple[Any, ...], error: Exception
) -> exc.StatementError:
    """The ``sqlalchemy.exc`` class SQLAlchemy raises for a driver's ``error``."""
    return exc.DBAPIError.instance(
        sql, args, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
    )


def _callable(processor: Any) -> Processor:
    return processor if callable(processor) else None


class Compiled:
    """A Core statement executed on the DBAPI cursor of a SQLAlchemy ``Connection``."""

    def __init__(self, statement: Executable) -> None:
        assert isinstance(statement, ClauseElement)  # noqa: S101 - a Core statement
        self.statement = statement
        self._forms: weakref.WeakKeyDictionary[Dialect, _Form] = weakref.WeakKeyDictionary()

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect)
        if form is None:
            form = self._forms[dialect] = _Form(self.statement, dialect)
        return form

    def _send(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Send the statement with ``params`` in ``conn``'s transaction; the DBAPI cursor."""
        form = self._form(conn.dialect)
        return send_on_cursor(conn, form.sql, form.parameters(params))

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Send a write; how many rows it changed (or inserted)."""
        if conn.dialect.name != "sqlite":
            # SQLAlchemy keeps an INSERT's row count only when asked.
            result = conn.execute(self.statement, params, execution_options=_ROWCOUNT)
            return int(result.rowcount)
        cursor = self._send(conn, params)
        count = int(cursor.rowcount)
        cursor.close()
        return count

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Send a query (or a write with RETURNING); its first row by column name, converted
        as SQLAlchemy converts it, or None."""
        if conn.dialect.name != "sqlite":
            row = conn.execute(self.statement, params).first()
            return None if row is None else dict(row._mapping)
        cursor = self._send(conn, params)
        found = cursor.fetchone()
        cursor.close()
        return None if found is None else self._convert(conn.dialect, found)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Send a query; its rows by column name, converted as SQLAlchemy converts them."""
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement, params)
            return [dict(row._mapping) for row in result]
        cursor = self._send(conn, params)
        rows = cursor.fetchall()
        cursor.close()
        return [self._convert(conn.dialect, row) for row in rows]

    def _convert(self, dialect: Dialect, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: value if convert is None else convert(value)
            for (name, convert), value in zip(self._form(dialect).columns, row, strict=True)
        }
