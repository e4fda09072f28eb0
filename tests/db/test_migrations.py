"""The Alembic migrations and the models describe the same schema, on this backend."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from runhq.db.migrate import schema_drift
from runhq.db.models import Base


def test_migrations_match_the_models(db_engine: Engine) -> None:
    assert schema_drift(db_engine) == []


def test_every_model_table_exists_with_the_seed_indexes(db_engine: Engine) -> None:
    inspector = inspect(db_engine)
    assert set(Base.metadata.tables) <= set(inspector.get_table_names())
    names = {ix["name"] for ix in inspector.get_indexes("structured_logs")}
    assert {"idx_structured_logs_level_created", "idx_structured_logs_source_created"} <= names


def test_company_data_tables_carry_workspace_id() -> None:
    # Not company data; login_failures are counted before any workspace is known.
    global_tables = {"users", "workspaces", "scheduler_leases", "login_failures"}
    for name, table in Base.metadata.tables.items():
        if name in global_tables:
            continue
        assert "workspace_id" in table.c, f"{name} has no workspace_id"
