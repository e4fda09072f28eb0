"""One error hierarchy for runhq, rendered by one handler for the API, HTMX and the CLI.

An expected failure (bad input, refusal, conflict) is a ``RunhqError`` with its HTTP status;
anything else is a bug and becomes a sanitised 500.
"""

from __future__ import annotations

from typing import Any


class RunhqError(Exception):
    """Base of every expected runhq failure."""

    status: int = 400
    code: str = "runhq_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ConfigurationError(RunhqError):
    code = "configuration_error"
    status = 500


class RegistryError(RunhqError):
    """The run-type registry file is broken; raised at start-up."""

    code = "registry_invalid"
    status = 500


class NotFound(RunhqError):
    code = "not_found"
    status = 404


class InvalidInput(RunhqError):
    code = "invalid_input"
    status = 422


class RunTypeUnknown(RunhqError):
    code = "run_type_unknown"
    status = 400


class DuplicateRun(RunhqError):
    code = "duplicate_run"
    status = 409


class IdempotencyConflict(RunhqError):
    code = "idempotency_conflict"
    status = 409


class InvalidTransition(RunhqError):
    code = "invalid_transition"
    status = 409


class BudgetExceeded(RunhqError):
    code = "budget_exceeded"
    status = 402


class ApprovalRequired(RunhqError):
    code = "approval_required"
    status = 409


class NotAuthenticated(RunhqError):
    code = "not_authenticated"
    status = 401


class PermissionDenied(RunhqError):
    code = "permission_denied"
    status = 403


class AlreadyExists(RunhqError):
    code = "already_exists"
    status = 409


class CsrfRejected(RunhqError):
    """A browser form or HTMX request without the anti-forgery token of its session."""

    code = "csrf_rejected"
    status = 403


class TooManyLoginAttempts(RunhqError):
    """Too many failed logins for this account or from this address lately."""

    code = "too_many_login_attempts"
    status = 429


class LeaseLost(RunhqError):
    """This scheduler's lease expired or was taken over: its pending writes are refused."""

    code = "lease_lost"
    status = 409
