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

Only for SQLite (see docs/adr/0015-compiled-statements-on-sqlite.md): on PostgreSQL the hot
path is one statement per step already (ADR 0014), and SQLAlchemy's handling of a dropped
connection (invalidating the pool) is kept. Statements with expanding (``IN``) or
literal-execute parameters are refused when compiled.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


class _Form:
    """One statement as compiled for one dialect."""

    __slots__ = ("sql", "names", "binds", "fixed", "columns")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # noqa: S101 - a SQL statement
        if compiled.positiontup is None:
            raise TypeError(f"{dialect.name}: only positional parameter styles are supported")
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise TypeError("expanding or literal-execute parameters are not supported")
        self.sql: str = compiled.string
        processors = compiled._bind_processors
        self.names: tuple[str, ...] = tuple(compiled.positiontup)
        self.binds: tuple[Processor, ...] = tuple(
            processor if callable(processor) else None
            for processor in (processors.get(name) for name in self.names)
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
        try:
            return tuple(
                values[name] if bind is None else bind(values[name])
                for name, bind in zip(self.names, self.binds, strict=True)
            )
        except KeyError as missing:
            raise exc.ArgumentError(f"no value for the bound parameter {missing}") from None


class Compiled:
    """A Core statement executed on the DBAPI cursor of a SQLAlchemy ``Connection``."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._forms: weakref.WeakKeyDictionary[Dialect, _Form] = weakref.WeakKeyDictionary()

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect)
        if form is None:
            form = self._forms[dialect] = _Form(self.statement, dialect)
        return form

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Send the statement with ``params`` in ``conn``'s transaction; the DBAPI cursor."""
        form = self._form(conn.dialect)
        args = form.parameters(params)
        cursor = conn.connection.cursor()
        conn.dispatch.before_cursor_execute(conn, cursor, form.sql, args, None, False)
        try:
            cursor.execute(form.sql, args)
        except conn.dialect.loaded_dbapi.Error as error:
            cursor.close()
            raise exc.DBAPIError.instance(
                form.sql, args, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from error
        return cursor

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Send a write; how many rows it changed (or inserted)."""
        cursor = self.execute(conn, params)
        count = int(cursor.rowcount)
        cursor.close()
        return count

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Send a query (or a write with RETURNING); its first row by column name, converted
        as SQLAlchemy converts it, or None."""
        cursor = self.execute(conn, params)
        row = cursor.fetchone()
        cursor.close()
        if row is None:
            return None
        columns = self._form(conn.dialect).columns
        return {
            name: value if convert is None else convert(value)
            for (name, convert), value in zip(columns, row, strict=True)
        }
