"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from runhq import __version__
from runhq.auth.routes import router as auth_router
from runhq.config import get_settings
from runhq.costs.routes import router as costs_router
from runhq.db.session import transaction
from runhq.logs import service as logs
from runhq.logs.routes import router as logs_router
from runhq.registry.routes import router as run_types_router
from runhq.runs.routes import router as runs_router
from runhq.runtime import Runtime, build_runtime
from runhq.web.errors import install_error_handlers
from runhq.workers.local import LocalExecutor

logger = logging.getLogger(__name__)

_HOUSEKEEPING_SECONDS = 6 * 3600


def _housekeeping(runtime: Runtime, stop: threading.Event) -> None:
    """Embedded mode's periodic jobs (the scheduler takes them over when distributed)."""
    while not stop.is_set():
        try:
            with transaction(runtime.sessions) as session:
                logs.purge_logs(session, older_than_days=runtime.settings.log_retention_days)
        except Exception:
            logger.exception("log purge failed")
        stop.wait(_HOUSEKEEPING_SECONDS)


def create_app(runtime: Runtime | None = None, *, background: bool = True) -> FastAPI:
    """The app. ``background``: run the in-process executor and housekeeping (embedded)."""
    runtime = runtime or build_runtime(get_settings())
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background and runtime.settings.executor == "local":
            executor = LocalExecutor(
                runtime.engine, runtime.sessions, threads=runtime.settings.worker_threads
            )
            runtime.executor = executor
            executor.start()
            threading.Thread(
                target=_housekeeping, args=(runtime, stop), daemon=True, name="runhq-housekeeping"
            ).start()
        try:
            yield
        finally:
            stop.set()
            if runtime.executor is not None:
                runtime.executor.stop()
                runtime.executor = None

    app = FastAPI(
        title="runhq",
        version=__version__,
        description="AI operations HQ: run types, runs, approvals, logs and costs.",
        lifespan=lifespan,
        debug=False,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    api = APIRouter(prefix="/api/v1")
    for router in (auth_router, run_types_router, runs_router, logs_router, costs_router):
        api.include_router(router)
    app.include_router(api)

    @app.get("/health/live", tags=["health"], summary="The process is up")
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], summary="The database answers")
    def ready() -> JSONResponse:
        try:
            with runtime.db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            logger.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "down"}, 503)
        return JSONResponse({"status": "ok", "database": "up"})

    return app
