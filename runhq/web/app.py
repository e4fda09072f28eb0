"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from runhq import __version__
from runhq.actions.routes import public as unsubscribe_router
from runhq.actions.routes import router as contacts_router
from runhq.auth.routes import router as auth_router
from runhq.config import get_settings
from runhq.costs.routes import router as costs_router
from runhq.dashboard.errors import render_error as render_error_page
from runhq.dashboard.pages import STATIC_DIR
from runhq.dashboard.routes import router as dashboard_router
from runhq.db.checkpoint import WalCheckpointer, start_wal_checkpointer
from runhq.logs.routes import router as logs_router
from runhq.platforms.routes import router as platforms_router
from runhq.registry.routes import router as run_types_router
from runhq.runs.routes import router as runs_router
from runhq.runtime import Runtime, build_runtime
from runhq.scheduler.routes import router as scheduler_router
from runhq.scheduler.tasks import Scheduler
from runhq.web.errors import install_error_handlers
from runhq.workers import build_executor

logger = logging.getLogger(__name__)


def create_app(runtime: Runtime | None = None, *, background: bool = True) -> FastAPI:
    """The app. ``background``: run the in-process executor and housekeeping (embedded)."""
    runtime = runtime or build_runtime(get_settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler: Scheduler | None = None
        checkpointer: WalCheckpointer | None = None
        try:
            if background:
                runtime.executor = build_executor(runtime)
                runtime.executor.start()
                if runtime.settings.executor == "local":
                    # Embedded: the scheduler lives in the server. It takes the same lease a
                    # separate `runhq scheduler` would, so running both is harmless.
                    scheduler = Scheduler(runtime)
                    threading.Thread(
                        target=scheduler.run_forever, daemon=True, name="runhq-scheduler"
                    ).start()
                # SQLite: WAL checkpoints off the commit path (ADR 0019); None on PostgreSQL.
                checkpointer = start_wal_checkpointer(runtime.db)
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if runtime.executor is not None:
                runtime.executor.stop()
                runtime.executor = None
            if checkpointer is not None:
                checkpointer.stop()

    app = FastAPI(
        title="runhq",
        version=__version__,
        description="AI operations HQ: run types, runs, approvals, logs and costs.",
        lifespan=lifespan,
        debug=False,
    )
    app.state.runtime = runtime
    install_error_handlers(app, pages=render_error_page)

    api = APIRouter(prefix="/api/v1")
    for router in (
        auth_router,
        run_types_router,
        runs_router,
        logs_router,
        costs_router,
        scheduler_router,
        platforms_router,
        contacts_router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.include_router(unsubscribe_router)
    # The dashboard: HTML pages at / (outside the OpenAPI schema) and their static files.
    app.include_router(dashboard_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health/live", tags=["health"], summary="The process is up")
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], summary="The database (and broker) answer")
    def ready() -> JSONResponse:
        try:
            with runtime.db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            logger.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "down"}, 503)
        body = {"status": "ok", "database": "up"}
        if runtime.settings.executor == "celery":
            from runhq.workers.celery import check_broker

            try:
                check_broker(runtime.settings)
                body["broker"] = "up"
            except Exception as exc:  # the API still accepts runs: the outbox keeps them
                logger.warning("broker unreachable: %s", type(exc).__name__)
                return JSONResponse({**body, "status": "unavailable", "broker": "down"}, 503)
        return JSONResponse(body)

    return app
