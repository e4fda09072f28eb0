"""Programmatic Alembic: ``upgrade`` to head and ``check`` that models and migrations agree."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from runhq.db.models import Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision``, in one transaction.

    On SQLite, foreign keys are not enforced while the migrations run: SQLite changes a table
    by building a new one and dropping the old (its documented 12-step ALTER TABLE), and
    dropping a table that others reference would run their ON DELETE actions — a rebuild of
    ``runs`` would empty ``structured_logs.run_id`` and delete the approvals. The pragma is a
    no-op inside a transaction, so it is set on the driver's connection before it; the
    references are checked (``PRAGMA foreign_key_check``) before the commit, and enforcement
    is back on for the pooled connection whatever happens.
    """
    cfg = alembic_config()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        driver = conn.connection.driver_connection
        if sqlite:
            driver.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    _check_references(conn)
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def _check_references(conn: Connection) -> None:
    """Refuse (roll the migration back) if a row references a missing one."""
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({f"{row[0]} -> {row[2]}" for row in broken})
        raise RuntimeError(
            f"migration left {len(broken)} broken reference(s) ({', '.join(tables)}): rolled back"
        )


def schema_drift(engine: Engine) -> list[object]:
    """Differences between the models and the migrated database (empty when they agree)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))
