"""Alembic environment: the URL comes from the caller's config or runhq's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from runhq.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from runhq.config import get_settings
    from runhq.db.session import build_engine

    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    engine = build_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("runhq migrations run online only")
run_migrations_online()
