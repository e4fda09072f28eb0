"""GET /api/v1/run-types."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from runhq.errors import NotFound, RunTypeUnknown
from runhq.registry.schemas import Localized, Risk, RunTypeSpec
from runhq.registry.service import Registry
from runhq.web.deps import ActorDep, RuntimeDep
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/run-types", tags=["run-types"], responses=ERROR_RESPONSES)


class RunTypeOut(BaseModel):
    key: str
    agent: str
    agent_title: Localized
    agent_emoji: str
    model: str
    fallback_model: str | None
    estimated_cost_eur: float
    risk: Risk
    requires_approval: bool
    timeout_seconds: int
    label: Localized
    description: Localized
    steps: list[str]
    steps_fr: list[str]
    context: list[str]
    output_sections: list[str]
    params_schema: dict[str, Any]


def to_out(registry: Registry, spec: RunTypeSpec) -> RunTypeOut:
    agent = registry.agents[spec.agent]
    return RunTypeOut(
        **spec.model_dump(
            include={
                "key",
                "agent",
                "model",
                "fallback_model",
                "estimated_cost_eur",
                "risk",
                "requires_approval",
                "timeout_seconds",
                "label",
                "description",
                "steps",
                "steps_fr",
                "context",
                "output_sections",
            }
        ),
        agent_title=agent.title,
        agent_emoji=agent.emoji,
        params_schema=spec.params_schema,
    )


@router.get("", response_model=list[RunTypeOut], summary="The run types of the registry")
def list_run_types(runtime: RuntimeDep, _: ActorDep) -> list[RunTypeOut]:
    reg = runtime.registry
    return [to_out(reg, spec) for spec in reg.run_types.values()]


@router.get("/{key}", response_model=RunTypeOut, summary="One run type")
def get_run_type(key: str, runtime: RuntimeDep, _: ActorDep) -> RunTypeOut:
    try:
        spec = runtime.registry.get(key)
    except RunTypeUnknown as exc:
        raise NotFound(exc.message, details=exc.details) from None
    return to_out(runtime.registry, spec)
