"""API shapes of runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runhq.runs.models import RunStatus


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_type: str = Field(min_length=1, max_length=64, description="A key of /run-types.")
    platform_key: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="The platform (product) this run is about.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters, validated against the run type's schema."
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Repeat a creation safely: the same key returns the same run.",
    )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000, description="Why (recorded).")
    plan_hash: str | None = Field(
        None,
        max_length=64,
        description="The plan_hash you reviewed: refused (409) if the plan changed since.",
    )


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any] = Field(description="The edited plan; it needs a new approval.")


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="Why (required).")


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_type: str
    agent: str
    status: RunStatus
    platform_key: str | None
    params: dict[str, Any]
    executive_summary: str | None
    output: dict[str, Any] | None
    model_requested: str
    model_used: str | None
    estimated_cost: float
    actual_cost: float | None
    tokens_in: int
    tokens_out: int
    duration_ms: int | None
    error: str | None
    attempt: int
    parent_run_id: uuid.UUID | None
    requested_by: uuid.UUID | None
    requested_via: str
    idempotency_key: str | None
    cancel_requested: bool
    phase: str = Field(description="single, or plan/review/act for action runs.")
    plan: dict[str, Any] | None = Field(description="What an action run will do.")
    plan_hash: str | None
    action_result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunDetail(RunOut):
    context: dict[str, Any] | None = Field(description="The facts gathered (replayable).")
    prompt: dict[str, Any] | None = Field(description="Messages sent to the model.")
    price: dict[str, Any] | None = Field(description="Price per million tokens used.")
    approvals: list[ApprovalOut]


class ApprovalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    decision: str
    reason: str | None
    decided_by: uuid.UUID | None
    created_at: datetime


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


RunDetail.model_rebuild()
