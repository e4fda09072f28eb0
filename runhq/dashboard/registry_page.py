"""The registry (``/registry``): the run types with their agent, model, estimated cost, risk
and approval, and "run now".

Starting a run is a POST (CSRF, operator role, checked again by ``runs.create_run``) that
leads to the run's page, where its status updates until it is finished. A run type that
waits for an owner's approval asks for confirmation first: a native ``<dialog>``
(``static/pages/registry.js``), or without JavaScript the run type's page, which is the
confirmation step. A run type with parameters has a form on its page (``/registry/{key}``);
one with required parameters is started from there only.

A refusal (an identical run already active: 409, over budget: 402, a bad parameter: 422)
is a toast for HTMX requests, and for a plain form the run type's page again with the
message and what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from runhq.dashboard.errors import localised_message
from runhq.dashboard.pages import SECURITY_HEADERS, Page, PageDep
from runhq.dashboard.session import check_csrf, is_htmx
from runhq.errors import DuplicateRun, NotFound, RunhqError
from runhq.registry.schemas import ParamSpec, RunTypeSpec
from runhq.runs import service as runs

router = APIRouter(include_in_schema=False)

#: Form fields of parameters are named ``param.<name>``.
PARAM_PREFIX = "param."
_MAX_FIELD = 10_000  # characters kept of one submitted field


@dataclass(frozen=True)
class RunTypeRow:
    """A run type as the registry page shows it."""

    key: str
    label: str
    description: str
    agent: str
    agent_emoji: str
    agent_title: str
    model: str
    estimated_cost: float
    risk: str
    requires_approval: bool
    action: str | None
    params: dict[str, ParamSpec]
    required: list[str]

    @property
    def needs_params(self) -> bool:
        return bool(self.required)


def _row(page: Page, spec: RunTypeSpec) -> RunTypeRow:
    lang = page.tr.lang
    agent = page.runtime.registry.agents.get(spec.agent)
    return RunTypeRow(
        key=spec.key,
        label=spec.label.get(lang),
        description=spec.description.get(lang),
        agent=spec.agent,
        agent_emoji=agent.emoji if agent is not None else "",
        agent_title=agent.title.get(lang) if agent is not None else spec.agent,
        model=spec.model,
        estimated_cost=spec.estimated_cost_eur,
        risk=spec.risk.value,
        requires_approval=spec.requires_approval,
        action=spec.action,
        params=dict(spec.params),
        required=[name for name, param in spec.params.items() if param.required],
    )


def _spec(page: Page, key: str) -> RunTypeSpec:
    spec = page.runtime.registry.run_types.get(key)
    if spec is None:
        raise NotFound(f"no run type {key[:80]!r} in the registry")
    return spec


def params_from_form(spec: RunTypeSpec, form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The run's parameters from the form, and the raw values to show it again.

    Values are converted to the parameter's type when they can be; one that cannot is passed
    on as typed, so ``runs.check_params`` (after the role check) names it in its 422. Empty
    fields are left out: the run type's defaults apply.
    """
    params: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for name, param in spec.params.items():
        value = form.get(PARAM_PREFIX + name)
        if not isinstance(value, str):
            continue
        value = value[:_MAX_FIELD]
        raw[name] = value
        if param.type == "boolean":
            params[name] = value in ("on", "true", "1", "yes")
            continue
        text = value.strip()
        if not text:
            continue
        if param.type == "array":
            items = [item.strip() for item in text.replace("\r", "").split("\n")]
            if len(items) == 1:
                items = [item.strip() for item in items[0].split(",")]
            params[name] = [_convert(param.items or "string", item) for item in items if item]
        else:
            params[name] = _convert(param.type, text)
    return params, raw


def _convert(kind: str, text: str) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text.replace(",", "."))
    except ValueError:
        return text
    return text


@router.get("/registry", response_class=HTMLResponse)
def registry_list(page: PageDep) -> HTMLResponse:
    rows = [_row(page, spec) for spec in page.runtime.registry.run_types.values()]
    return page.render("registry.html", {"rows": rows})


def _render_type(
    page: Page,
    spec: RunTypeSpec,
    *,
    values: dict[str, str] | None = None,
    error: RunhqError | None = None,
    status: int = 200,
) -> HTMLResponse:
    running_id = error.details.get("running_run_id") if isinstance(error, DuplicateRun) else None
    return page.render(
        "registry_type.html",
        {
            "row": _row(page, spec),
            "spec": spec,
            "values": values or {},
            "error": localised_message(page.tr, error) if error is not None else None,
            "error_field": (error.details.get("field") if error is not None else None),
            "running_id": running_id,
        },
        status=status,
    )


@router.get("/registry/{key}", response_class=HTMLResponse)
def registry_type(key: str, page: PageDep) -> HTMLResponse:
    return _render_type(page, _spec(page, key))


async def read_form(request: Request) -> FormData:
    """The posted form (read once; ``check_csrf`` has read it already)."""
    return await request.form()


@router.post("/registry/{key}/run", dependencies=[Depends(check_csrf)])
def run_now(key: str, page: PageDep, form: Annotated[FormData, Depends(read_form)]) -> Response:
    spec = _spec(page, key)
    params, raw = params_from_form(spec, form)
    runtime = page.runtime
    try:
        run, _ = runs.create_run(
            page.session,
            page.actor,
            runtime.registry,
            run_type=spec.key,
            params=params,
            stuck_after=runtime.stuck_after,
            tz=runtime.settings.timezone,
            notify=runtime.notify,
        )
    except RunhqError as exc:
        if is_htmx(page.request) or exc.status >= 500 or exc.status in (401, 403):
            raise  # a toast (HTMX), the error page (role, CSRF), or a 500
        # A plain form: its page again, with the message and what was typed.
        return _render_type(page, spec, values=raw, error=exc, status=exc.status)
    target = f"/runs/{run.id}"
    if is_htmx(page.request):
        return Response(status_code=204, headers={**SECURITY_HEADERS, "HX-Redirect": target})
    return RedirectResponse(target, 303, headers=SECURITY_HEADERS)
