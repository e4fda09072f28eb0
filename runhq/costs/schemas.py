"""Cost report shapes. Every figure is a number, never null or NaN."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CostLine(BaseModel):
    key: str = Field(description="Run type or agent key; for model calls, who called.")
    runs: int = Field(description="Runs; for model calls outside runs, calls.")
    total_cost: float
    average_cost: float
    estimated_total: float


class BudgetStatus(BaseModel):
    scope: str = Field(description="'global' or an agent key.")
    monthly_limit_eur: float
    spent_eur: float
    reserved_eur: float = Field(description="Estimates of runs not finished yet.")
    remaining_eur: float


class CostReport(BaseModel):
    month: str = Field(description="YYYY-MM, in the business time zone.")
    currency: str = "EUR"
    total_cost: float = Field(description="Runs and model calls outside runs.")
    estimated_total: float = Field(description="What the month's runs were estimated at.")
    runs: int
    by_run_type: list[CostLine]
    by_agent: list[CostLine]
    model_calls: list[CostLine] = Field(
        description="Model calls outside runs (the autopilot's decisions), by caller; counted "
        "in total_cost and in the global budget."
    )
    budgets: list[BudgetStatus]


class BudgetIn(BaseModel):
    scope: str = Field(
        "global", pattern=r"^(global|[A-Z]{2,5})$", description="'global' or an agent key."
    )
    monthly_limit_eur: float = Field(ge=0, le=1_000_000)
