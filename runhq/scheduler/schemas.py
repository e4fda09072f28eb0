"""API shapes of schedules and the autopilot."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

JOB_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,99}$"


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_key: str = Field(pattern=JOB_KEY_PATTERN, description="Your name for this job.")
    run_type: str = Field(min_length=1, max_length=64)
    platform_key: str | None = Field(
        None, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    cron: str = Field(min_length=1, max_length=100, examples=["30 7 * * 1-5"])
    timezone: str = Field("Europe/Paris", max_length=64)
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_type: str | None = Field(None, min_length=1, max_length=64)
    platform_key: str | None = Field(
        None, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$"
    )
    params: dict[str, Any] | None = None
    cron: str | None = Field(None, min_length=1, max_length=100)
    timezone: str | None = Field(None, max_length=64)
    enabled: bool | None = None


class ScheduleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    job_key: str
    run_type: str
    platform_key: str | None
    params: dict[str, Any]
    cron: str
    timezone: str
    enabled: bool
    last_fired_at: datetime | None
    last_run_id: uuid.UUID | None
    next_firings: list[datetime] = Field(description="The next 5 firing instants (UTC).")
    created_at: datetime
    updated_at: datetime


class AutopilotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    interval_minutes: int | None = Field(None, ge=1, le=1440)


class AutopilotOut(BaseModel):
    enabled: bool
    interval_minutes: int
    mode: str = Field(description="'model' when a model is configured, else 'deterministic'.")
    last_cycle_at: datetime | None
    next_cycle_at: datetime | None


class Rejection(BaseModel):
    job_key: str
    reason: str


class ModelCallOut(BaseModel):
    model: str
    tokens_in: int
    tokens_out: int
    cost_eur: float


class Decision(BaseModel):
    id: uuid.UUID
    created_at: datetime
    mode: str
    jobs_to_run: list[str] = Field(description="What the policy or the model proposed.")
    accepted: list[str]
    rejected: list[Rejection]
    reasoning: str
    paris_hour: int
    next_check_in_minutes: int
    run_ids: list[str]
    awaiting_approval: list[str] = Field(
        default_factory=list, description="Accepted gated jobs: started, waiting for an owner."
    )
    error: str | None = Field(None, description="Why the model's answer was unusable.")
    model_refused: str | None = Field(
        None, description="Why the model was not called (the global budget is spent)."
    )
    model_call: ModelCallOut | None = Field(
        None, description="What the model call cost (billed as a model call outside runs)."
    )
    snapshot: dict[str, Any] | None = None


class DecisionPage(BaseModel):
    items: list[Decision]
    next_cursor: str | None
