"""What a runhq process holds: settings, database, registry, gateway, engine, executor.

Built once at start-up (server, CLI, worker) and validated there: a broken registry or bad
settings stop the process with a message naming what to fix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from runhq.config import Settings
from runhq.context.service import check_providers
from runhq.db.session import get_engine, make_session_factory
from runhq.errors import RegistryError
from runhq.llm.gateway import Gateway
from runhq.registry.service import Registry, get_registry
from runhq.runs.engine import Engine
from runhq.workers.base import Executor


@dataclass
class Runtime:
    settings: Settings
    db: DbEngine
    sessions: sessionmaker[Session]
    registry: Registry
    gateway: Gateway
    engine: Engine
    executor: Executor | None = field(default=None)

    @property
    def stuck_after(self) -> timedelta:
        return timedelta(minutes=self.settings.stuck_after_minutes)

    def notify(self, run_id: uuid.UUID) -> None:
        """Tell the executor a run is queued (after commit); no executor: it waits in the DB."""
        if self.executor is not None:
            self.executor.notify(run_id)


def check_registry(registry: Registry, settings: Settings) -> None:
    """Cross-checks the registry against the code and settings it relies on."""
    unknown = check_providers({n for spec in registry.run_types.values() for n in spec.context})
    if unknown:
        raise RegistryError(f"{registry.source}: unknown context providers: {', '.join(unknown)}")
    for spec in registry.run_types.values():
        for model in filter(None, (spec.model, spec.fallback_model)):
            if model not in settings.llm_models:
                raise RegistryError(
                    f"{registry.source}: entry {spec.key}: model {model!r} has no price/"
                    f"endpoint in RUNHQ_LLM_MODELS"
                )


def build_runtime(settings: Settings, *, db: DbEngine | None = None) -> Runtime:
    registry = get_registry(settings.registry_path)
    check_registry(registry, settings)
    db = db or get_engine(settings.resolved_database_url)
    sessions = make_session_factory(db)
    gateway = Gateway(settings)
    engine = Engine(sessions, settings, registry, gateway)
    return Runtime(
        settings=settings,
        db=db,
        sessions=sessions,
        registry=registry,
        gateway=gateway,
        engine=engine,
    )
