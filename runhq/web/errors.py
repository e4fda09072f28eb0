"""One renderer for every error: ``{"error": {"code", "message", "details"}}``.

Expected failures keep their status; anything else is a 500 that says nothing about the
code (the traceback goes to the server log with a request id the client can quote).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from runhq.errors import NotAuthenticated, RunhqError

logger = logging.getLogger(__name__)


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RunhqError)
    async def _runhq(_: Request, exc: RunhqError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, NotAuthenticated) else None
        return JSONResponse(_body(exc.code, exc.message, exc.details), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return JSONResponse(
            _body(
                "validation_error",
                f"{first['field']}: {first['message']}",
                {"field": first["field"], "errors": errors},
            ),
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            _body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        logger.exception("unhandled error ref=%s on %s %s", ref, request.method, request.url.path)
        return JSONResponse(
            _body(
                "internal_error",
                f"internal error; quote reference {ref} to support",
                {"reference": ref},
            ),
            500,
        )


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
