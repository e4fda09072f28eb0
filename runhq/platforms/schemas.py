"""API shapes of platforms, checks, incidents and uptime."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_HTTP_URL = TypeAdapter(AnyHttpUrl)
_FIELDS_OF = {
    "webhook": ({"url", "secret_env"}, set()),
    "github": ({"workflow", "token_env"}, {"ref", "api_url"}),
}


class DeployTarget(BaseModel):
    """How runhq acts on a platform: ``type`` webhook (a signed POST) or github (a workflow
    dispatch) for DEPLOY_TO_PRODUCTION, ``database_url_env`` for RLS_POLICY_UPDATE. Secrets
    are never stored: only the names of the environment variables that hold them."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook", "github"] | None = None
    url: str | None = Field(None, max_length=2000, description="webhook: the URL to POST to.")
    secret_env: str | None = Field(
        None, pattern=ENV_NAME, description="webhook: the variable holding the HMAC secret."
    )
    workflow: str | None = Field(
        None, min_length=1, max_length=200, description="github: the workflow file or id."
    )
    token_env: str | None = Field(
        None, pattern=ENV_NAME, description="github: the variable holding the token."
    )
    ref: str | None = Field(None, max_length=200, description="github: the default ref.")
    api_url: str | None = Field(None, max_length=2000, description="github: GitHub's API URL.")
    database_url_env: str | None = Field(
        None, pattern=ENV_NAME, description="The variable holding the PostgreSQL URL (RLS)."
    )

    @field_validator("url", "api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            _HTTP_URL.validate_python(value)  # kept as written, checked as a URL
        return value

    @model_validator(mode="after")
    def _complete(self) -> DeployTarget:
        given = {k for k, v in self.model_dump(exclude={"type", "database_url_env"}).items() if v}
        if self.type is None:
            if given:
                raise ValueError(
                    f"{', '.join(sorted(given))} need a type: webhook (url, secret_env) "
                    "or github (workflow, token_env)"
                )
            return self
        required, optional = _FIELDS_OF[self.type]
        if missing := required - given:
            raise ValueError(f"a {self.type} target needs {', '.join(sorted(missing))}")
        if stray := given - required - optional:
            raise ValueError(f"a {self.type} target takes no {', '.join(sorted(stray))}")
        return self


class PlatformIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY_PATTERN, description="The runs' platform_key.")
    name: str = Field(min_length=1, max_length=200)
    health_urls: list[AnyHttpUrl] = Field(default_factory=list, max_length=10)
    expected_status: int = Field(200, ge=100, le=599)
    expected_body: str | None = Field(
        None, max_length=500, description="Text the body must contain."
    )
    check_interval_seconds: int = Field(60, ge=10, le=86400)
    check_timeout_seconds: float = Field(5.0, gt=0, le=60)
    failure_threshold: int = Field(
        3, ge=1, le=100, description="Consecutive failed checks that open an incident."
    )
    repository: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$", max_length=200)
    environment: str = Field("production", max_length=50)
    deploy_target: DeployTarget = Field(
        default_factory=DeployTarget,
        description="How DEPLOY_TO_PRODUCTION and RLS_POLICY_UPDATE act on this platform.",
    )
    owner_contact: str | None = Field(None, max_length=320)


class PlatformUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    health_urls: list[AnyHttpUrl] | None = Field(None, max_length=10)
    expected_status: int | None = Field(None, ge=100, le=599)
    expected_body: str | None = Field(None, max_length=500)
    check_interval_seconds: int | None = Field(None, ge=10, le=86400)
    check_timeout_seconds: float | None = Field(None, gt=0, le=60)
    failure_threshold: int | None = Field(None, ge=1, le=100)
    repository: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$", max_length=200)
    environment: str | None = Field(None, max_length=50)
    deploy_target: DeployTarget | None = None
    owner_contact: str | None = Field(None, max_length=320)


class Uptime(BaseModel):
    window: str
    checks: int
    ok: int
    uptime: float | None = Field(description="ok / checks, null when there was no check.")


class IncidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    reason: str
    failures: int
    opened_at: datetime
    closed_at: datetime | None


class CheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    url: str
    ok: bool
    status_code: int | None
    latency_ms: int | None
    error: str | None
    checked_at: datetime


class PlatformOut(BaseModel):
    id: uuid.UUID
    key: str
    name: str
    health_urls: list[str]
    expected_status: int
    expected_body: str | None
    check_interval_seconds: int
    check_timeout_seconds: float
    failure_threshold: int
    repository: str | None
    environment: str
    deploy_target: dict[str, Any]
    owner_contact: str | None
    status: str = Field(description="up, down (open incident), degraded or unknown.")
    last_checked_at: datetime | None
    open_incident: IncidentOut | None
    uptime: list[Uptime]
