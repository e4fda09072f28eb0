"""Pydantic models of the run-type registry file (``run_types.toml``) and agents file."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Risk(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


GATED_RISKS = frozenset({Risk.high, Risk.critical})


class Localized(BaseModel):
    """A text in the dashboard's two languages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fr: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.fr


class ParamSpec(BaseModel):
    """One accepted parameter of a run type; compiled to JSON Schema by the loader."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["string", "integer", "number", "boolean", "array"]
    description: str = Field(min_length=1)
    required: bool = False
    default: Any = None
    enum: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    items: Literal["string", "integer", "number"] | None = None
    max_items: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_items(self) -> ParamSpec:
        if self.type == "array" and self.items is None:
            raise ValueError("an array parameter needs 'items'")
        if self.type != "array" and (self.items is not None or self.max_items is not None):
            raise ValueError("'items'/'max_items' only apply to array parameters")
        return self

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum is not None:
            schema["enum"] = self.enum
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.items is not None:
            schema["items"] = {"type": self.items}
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema


class RunTypeSpec(BaseModel):
    """One entry of the registry. The key is the TOML table name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    agent: str = Field(pattern=r"^[A-Z]{2,5}$")
    model: str = Field(min_length=1)
    fallback_model: str | None = None
    estimated_cost_eur: float = Field(gt=0, lt=100)
    risk: Risk
    requires_approval: bool
    timeout_seconds: int = Field(ge=10, le=3600)
    label: Localized
    description: Localized
    task_prompt: str = Field(min_length=80)
    # English (the model's prompt and the API) and French (the dashboard), item for item.
    steps: list[str] = Field(min_length=2)
    steps_fr: list[str] = Field(min_length=2)
    context: list[str] = Field(min_length=1)
    output_sections: list[str] = Field(min_length=2)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    # Two-phase action runs: a plan first, the owner approves that plan, then the act.
    action: Literal["deploy", "email", "pricing", "rls"] | None = None
    # Gate runs answer with a verdict ("pass"/"fail") other runs rely on.
    gate: bool = False

    @field_validator("context")
    @classmethod
    def _unique_context(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("context providers are listed twice")
        return value

    @field_validator("steps", "steps_fr")
    @classmethod
    def _named_steps(cls, value: list[str]) -> list[str]:
        if any(not step.strip() for step in value):
            raise ValueError("a step has no name")
        return value

    @model_validator(mode="after")
    def _check_steps_fr(self) -> RunTypeSpec:
        if len(self.steps_fr) != len(self.steps):
            raise ValueError(
                f"steps_fr has {len(self.steps_fr)} steps, steps has {len(self.steps)}: "
                "one French name per step, in the same order"
            )
        return self

    def steps_in(self, lang: str) -> list[str]:
        """The steps in the dashboard's language."""
        return self.steps if lang == "en" else self.steps_fr

    @model_validator(mode="after")
    def _check_approval(self) -> RunTypeSpec:
        # Seed 001: every high and critical run type waits for an owner's approval.
        if self.risk in GATED_RISKS and not self.requires_approval:
            raise ValueError(f"risk '{self.risk}' requires requires_approval = true")
        if self.action is not None and not self.requires_approval:
            raise ValueError("an action run type must require approval")
        if self.fallback_model == self.model:
            raise ValueError("fallback_model must differ from model")
        return self

    @property
    def params_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: p.json_schema() for name, p in self.params.items()},
            "required": sorted(name for name, p in self.params.items() if p.required),
        }


class AgentSpec(BaseModel):
    """An agent persona: who speaks in a run's report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[A-Z]{2,5}$")
    emoji: str = Field(min_length=1, max_length=4)
    title: Localized
    persona: str = Field(min_length=200)
