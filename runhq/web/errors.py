"""One renderer for every error: ``{"error": {"code", "message", "details"}}``.

Expected failures keep their status; anything else is a 500 that says nothing about the
code (the traceback goes to the server log with a request id the client can quote).

The API (``/api``, health, webhooks, unsubscribe, the OpenAPI pages) always answers JSON.
Every other path is a page: when the app is built with a ``pages`` renderer (the dashboard's
``runhq.dashboard.errors.render_error``), the same :class:`ErrorInfo` is rendered as HTML (or
an HTMX toast) there instead.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from runhq.errors import NotAuthenticated, RunhqError

logger = logging.getLogger(__name__)

#: Paths that are the machine interface: their errors are JSON whatever asked.
JSON_PATH_PREFIXES = (
    "/api",
    "/health",
    "/webhooks",
    "/unsubscribe",
    "/openapi.json",
    "/docs",
    "/redoc",
)


@dataclass(frozen=True)
class ErrorInfo:
    """An error as every surface renders it."""

    status: int
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] | None = None
    #: Set for unexpected errors: the id under which the traceback was logged.
    reference: str | None = None


PageRenderer = Callable[[Request, ErrorInfo], Response]


def is_json_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in JSON_PATH_PREFIXES)


def _body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:] or parts
    return ".".join(parts)


def install_error_handlers(app: FastAPI, *, pages: PageRenderer | None = None) -> None:
    def respond(request: Request, info: ErrorInfo) -> Response:
        if pages is not None and not is_json_path(request.url.path):
            try:
                return pages(request, info)
            except Exception:  # the error page itself failed: say so plainly, once
                logger.exception("error page failed for %s %s", request.method, request.url.path)
                text = f"Error {info.status}" + (
                    f" (reference {info.reference})" if info.reference else ""
                )
                return PlainTextResponse(text, info.status)
        return JSONResponse(
            _body(info.code, info.message, info.details), info.status, headers=info.headers
        )

    @app.exception_handler(RunhqError)
    async def _runhq(request: Request, exc: RunhqError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, NotAuthenticated) else None
        info = ErrorInfo(exc.status, exc.code, exc.message, exc.details, headers=headers)
        return respond(request, info)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        info = ErrorInfo(
            422,
            "validation_error",
            f"{first['field']}: {first['message']}",
            {"field": first["field"], "errors": errors},
        )
        return respond(request, info)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        info = ErrorInfo(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )
        return respond(request, info)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        ref = uuid.uuid4().hex[:12]
        logger.exception("unhandled error ref=%s on %s %s", ref, request.method, request.url.path)
        info = ErrorInfo(
            500,
            "internal_error",
            f"internal error; quote reference {ref} to support",
            {"reference": ref},
            reference=ref,
        )
        return respond(request, info)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. duplicate_run.")
    message: str = Field(description="What went wrong and what to do about it.")
    details: dict[str, Any] | None = Field(
        None, description="Context: the field at fault, the running run's id, valid values…"
    )


class ErrorResponse(BaseModel):
    """Every error the API returns."""

    error: ErrorDetail


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "model": ErrorResponse}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Bad request (e.g. unknown run type: the valid ones are listed)"),
    401: _documented("Not authenticated: missing, expired or invalid token"),
    403: _documented("Authenticated but not allowed (role)"),
    404: _documented("Not found in your workspace"),
    409: _documented("Conflict: duplicate active run, invalid transition, idempotency reuse"),
    422: _documented("Invalid input: details.field names the field"),
}
