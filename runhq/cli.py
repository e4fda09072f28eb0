"""The ``runhq`` command line. Thin: every verb calls a service; ``--json`` on listings.

Local commands act on the database directly as the workspace owner (whoever can read the
database is trusted with it), or as ``--user EMAIL`` to act with that user's role.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.config import Settings, get_settings
from runhq.db.session import transaction
from runhq.errors import InvalidInput, NotFound, RunhqError
from runhq.logs.schemas import LogLevel, LogOut
from runhq.runs.models import TERMINAL_STATUSES, Run, RunStatus
from runhq.runs.schemas import RunOut
from runhq.runtime import Runtime, build_runtime

M = TypeVar("M", bound=BaseModel)

app = typer.Typer(
    help="runhq — AI operations HQ.", no_args_is_help=True, pretty_exceptions_enable=False
)
logs_app = typer.Typer(help="Structured logs: list (default) and purge.")
costs_app = typer.Typer(help="AI costs of a month; budgets.")
user_app = typer.Typer(
    help="Users of the workspace: add, list, logout, deactivate, activate.", no_args_is_help=True
)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
schedules_app = typer.Typer(help="Schedules: list (default), add, enable, disable, remove.")
autopilot_app = typer.Typer(help="The autopilot: on, off, status, decisions.", no_args_is_help=True)
app.add_typer(logs_app, name="logs")
app.add_typer(costs_app, name="costs")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(db_app, name="db")
app.add_typer(schedules_app, name="schedules")
app.add_typer(autopilot_app, name="autopilot")
platforms_app = typer.Typer(
    help="Platforms the HQ watches: list (default), add, target, check, remove."
)
app.add_typer(platforms_app, name="platforms")
contacts_app = typer.Typer(help="Campaign contacts: list (default), import a CSV, erase.")
app.add_typer(contacts_app, name="contacts")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UserOpt = Annotated[
    str | None, typer.Option("--user", help="Act as this user (default: the owner).")
]


class _State:
    runtime: Runtime | None = None


def _runtime() -> Runtime:
    if _State.runtime is None:
        _State.runtime = build_runtime(get_settings())
    return _State.runtime


def _check_schema(runtime: Runtime) -> None:
    if not sa_inspect(runtime.db).has_table("runs"):
        raise RunhqError(
            "the database is not initialised: run `runhq init` first", code="not_initialised"
        )


@contextmanager
def _unit_of_work() -> Iterator[tuple[Runtime, Session]]:
    runtime = _runtime()
    _check_schema(runtime)
    with transaction(runtime.sessions) as session:
        yield runtime, session


def _actor(session: Session, user: str | None) -> Actor:
    if user is None:
        return auth.get_default_owner(session)
    found = auth.get_user_by_email(session, user)
    if found is None:
        raise NotFound(f"no user {user!r}")
    membership = auth.get_membership(session, found.id)
    if membership is None:
        raise NotFound(f"user {user!r} belongs to no workspace")
    return Actor(
        user_id=found.id,
        workspace_id=membership.workspace_id,
        role=Role(membership.role),
        via="cli",
    )


def _validated(model: type[M], **fields: Any) -> M:
    """A request model built from CLI options; a bad value is one error naming the field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}", details={"field": field}) from None


def _print_json(value: Any) -> None:
    # Plain stdout, not rich: machine output must never be wrapped or styled.
    sys.stdout.write(json.dumps(value, default=str, ensure_ascii=False, indent=2) + "\n")


def _parse_id(value: str, what: str = "run id", listing: str = "runhq runs") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a {what} (a UUID, as `{listing}` shows)", details={"field": "id"}
        ) from None


def _run_json(run: Run) -> dict[str, Any]:
    return RunOut.model_validate(run).model_dump(mode="json")


_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "cyan",
    "queued": "blue",
    "pending_approval": "yellow",
    "cancelled": "dim",
    "rejected": "magenta",
}


def _runs_table(rows: list[Run]) -> Table:
    table = Table("id", "run type", "status", "platform", "cost €", "created", box=None)
    for r in rows:
        cost = r.actual_cost if r.actual_cost is not None else r.estimated_cost
        table.add_row(
            str(r.id),
            r.run_type,
            f"[{_STATUS_STYLE.get(r.status, 'default')}]{r.status}[/]",
            r.platform_key or "—",
            f"{cost:.4f}",
            r.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
        )
    return table


# --- init, serve, db -------------------------------------------------------------------------


@app.command()
def init(
    owner_email: Annotated[str, typer.Option(help="Email of the workspace owner.")],
    owner_password: Annotated[str, typer.Option(help="Owner's password (10+ characters).")],
    workspace: Annotated[str, typer.Option(help="Workspace name.")] = "My company",
    demo: Annotated[bool, typer.Option(help="Add two weeks of demo run history.")] = False,
) -> None:
    """Create (or upgrade) the database, the workspace and its owner. Safe to re-run."""
    from runhq.db.migrate import upgrade
    from runhq.demo import seed_demo, seed_demo_setup

    runtime = _runtime()
    upgrade(runtime.db)
    with _unit_of_work() as (rt, session):
        existing = auth.get_user_by_email(session, owner_email)
        if existing is None:
            try:
                owner = auth.get_default_owner(session)
                raise InvalidInput(
                    f"this database already has an owner ({owner.user_id}); "
                    "use `runhq user add` for more users"
                )
            except NotFound:
                pass
            ws = auth.create_workspace(session, name=workspace)
            owner_user = auth.create_user(
                session,
                email=owner_email,
                password=owner_password,
                workspace_id=ws.id,
                role=Role.owner,
            )
            created = True
            ws_id = ws.id
        else:
            created = False
            membership = auth.get_membership(session, existing.id)
            assert membership is not None  # noqa: S101
            ws_id = membership.workspace_id
        added = 0
        if demo and created:
            added = seed_demo(
                session,
                ws_id,
                rt.registry,
                lang=rt.settings.report_language,
                tz=rt.settings.timezone,
            )
            owner_actor = Actor(user_id=owner_user.id, workspace_id=ws_id, role=Role.owner)
            seed_demo_setup(session, owner_actor, rt.registry, base_url=rt.settings.public_base_url)
    db = rt.settings.resolved_database_url.split("@")[-1]
    out.print(f"[green]✓[/] database ready ({db})")
    if created:
        out.print(
            f"[green]✓[/] owner {owner_email} created"
            + (f", {added} demo runs added" if added else "")
        )
    else:
        out.print(f"owner {owner_email} already exists; nothing changed")
    out.print(
        f"Start the server: [bold]runhq serve[/]  ·  dashboard: {rt.settings.public_base_url}/"
        f"  ·  API docs: {rt.settings.public_base_url}/docs\n"
        f"Log in: POST /api/v1/auth/token with username={owner_email}"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from runhq.db.migrate import upgrade

    upgrade(_runtime().db)
    out.print("[green]✓[/] database at the latest schema")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Start the HTTP server (API, and in embedded mode the executor)."""
    import uvicorn

    from runhq.web.app import create_app

    runtime = _runtime()
    _check_schema(runtime)
    uvicorn.run(create_app(runtime), host=host, port=port, log_level="info")


@app.command("config")
def config_guide() -> None:
    """Print every setting with its environment variable, description and current value."""
    settings = get_settings()
    table = Table("variable", "value", "description", box=None)
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "***" if "key" in name or "token" in name else str(value)
        if name == "llm_models":
            shown = ", ".join(value)
        table.add_row(
            f"RUNHQ_{name.upper()}", shown if value is not None else "—", field.description or ""
        )
    out.print(table)


# --- run types and runs ----------------------------------------------------------------------


@app.command("types")
def types_(as_json: JsonOpt = False) -> None:
    """The run types of the registry."""
    registry = _runtime().registry
    if as_json:
        from runhq.registry.routes import to_out

        _print_json(
            [to_out(registry, s).model_dump(mode="json") for s in registry.run_types.values()]
        )
        return
    table = Table("key", "agent", "model", "est. €", "risk", "approval", box=None)
    for s in registry.run_types.values():
        table.add_row(
            s.key,
            s.agent,
            s.model,
            f"{s.estimated_cost_eur:.2f}",
            s.risk.value,
            "yes" if s.requires_approval else "",
        )
    out.print(table)


def _parse_params(pairs: list[str], params_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"--params-json is not valid JSON: {exc.msg}", details={"field": "params"}
            ) from None
        if not isinstance(loaded, dict):
            raise InvalidInput("--params-json must be a JSON object", details={"field": "params"})
        params.update(loaded)
    for pair in pairs:
        if "=" not in pair:
            raise InvalidInput(f"--param {pair!r}: expected name=value", details={"field": pair})
        name, raw = pair.split("=", 1)
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


@app.command("run")
def run_(
    run_type: Annotated[str, typer.Argument(help="A key of `runhq types`.")],
    platform: Annotated[str | None, typer.Option("--platform", help="platform_key")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="name=value (JSON value or text)")
    ] = None,
    params_json: Annotated[str | None, typer.Option(help="All params as a JSON object.")] = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result.")] = False,
    inline: Annotated[
        bool,
        typer.Option("--inline", help="Execute in this process instead of waiting for the server."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 900,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a run; with --wait, follow it to the end."""
    params = _parse_params(param or [], params_json)
    with _unit_of_work() as (runtime, session):
        actor = _actor(session, user)
        run, _ = runtime_create(
            runtime, session, actor, run_type, platform, params, idempotency_key
        )
        run_id = run.id
    if run.status == RunStatus.pending_approval:
        if as_json:
            _print_json(_run_json(run))
        else:
            out.print(
                f"run {run_id} [yellow]pending_approval[/]: an owner must approve it "
                f"(`runhq approve {run_id}`)"
            )
        return
    if inline:
        runtime.engine.execute(run_id)
        wait = True
    if not wait:
        if as_json:
            _print_json(_run_json(run))
        else:
            out.print(f"run {run_id} queued · follow it with `runhq show {run_id}`")
        return
    final = _wait_for(runtime, run_id, timeout, quiet=as_json)
    if as_json:
        _print_json(_run_json(final))
    else:
        _print_run(final)
    if final.status == RunStatus.pending_approval:
        err.print(f"plan ready: an owner must approve it (`runhq approve {final.id}`)")
    elif final.status != RunStatus.completed:
        raise typer.Exit(1)


def runtime_create(
    runtime: Runtime,
    session: Session,
    actor: Actor,
    run_type: str,
    platform: str | None,
    params: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[Run, bool]:
    from runhq.runs import service as runs
    from runhq.runs.schemas import RunCreate

    body = _validated(
        RunCreate,
        run_type=run_type,
        platform_key=platform,
        params=params,
        idempotency_key=idempotency_key,
    )
    return runs.create_run(
        session,
        actor,
        runtime.registry,
        run_type=body.run_type,
        platform_key=body.platform_key,
        params=body.params,
        idempotency_key=body.idempotency_key,
        stuck_after=runtime.stuck_after,
        tz=runtime.settings.timezone,
    )


def _wait_for(runtime: Runtime, run_id: uuid.UUID, timeout: float, *, quiet: bool) -> Run:
    start = time.monotonic()
    hinted = False
    spinner = Spinner("dots", text="queued")
    live = Live(spinner, console=err, transient=True, auto_refresh=False)
    show = not quiet and err.is_terminal
    with live if show else nullcontext():
        while True:
            session = runtime.sessions()
            try:
                run = session.get(Run, run_id)
                assert run is not None  # noqa: S101
                session.expunge(run)
            finally:
                session.close()
            elapsed = time.monotonic() - start
            spinner.update(text=f"{run.run_type} · {run.status} · {elapsed:.0f}s")
            if show:
                live.refresh()
            if RunStatus(run.status) in TERMINAL_STATUSES or (
                run.status == RunStatus.pending_approval and run.phase == "review"
            ):
                return run  # finished, or an action run's plan is ready for approval
            if run.status == RunStatus.queued and elapsed > 10 and not hinted:
                hinted = True
                err.print(
                    "still queued: is `runhq serve` running? (or use --inline to execute here)"
                )
            if elapsed > timeout:
                raise RunhqError(
                    f"gave up waiting after {timeout:.0f}s; run {run_id} is {run.status}",
                    code="wait_timeout",
                )
            time.sleep(0.3)


def _print_run(run: Run) -> None:
    style = _STATUS_STYLE.get(run.status, "default")
    out.print(f"[bold]{run.run_type}[/] {run.id} [{style}]{run.status}[/]")
    cost = f"€{run.actual_cost:.4f}" if run.actual_cost is not None else "—"
    out.print(
        f"model {run.model_used or '—'} · tokens {run.tokens_in}/{run.tokens_out} · "
        f"cost {cost} (est. €{run.estimated_cost:.2f}) · "
        f"{(run.duration_ms or 0) / 1000:.1f}s"
    )
    if run.executive_summary:
        out.print(f"\n{run.executive_summary}")
    if run.plan:
        out.print(f"\n[bold]plan[/] ({run.phase}, hash {(run.plan_hash or '')[:12]}):")
        out.print_json(json.dumps(run.plan, default=str))
    if run.error:
        out.print(f"\n[red]error:[/] {run.error}")


@app.command("runs")
def runs_(
    status: Annotated[list[RunStatus] | None, typer.Option(help="Filter by status.")] = None,
    run_type: Annotated[str | None, typer.Option("--type", help="Filter by run type.")] = None,
    agent: Annotated[str | None, typer.Option(help="Filter by agent.")] = None,
    platform: Annotated[str | None, typer.Option(help="Filter by platform_key.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    as_json: JsonOpt = False,
    user: UserOpt = None,
) -> None:
    """List runs, newest first."""
    from runhq.runs import service as runs

    with _unit_of_work() as (runtime, session):
        if run_type:
            runtime.registry.get(run_type)
        rows, next_cursor = runs.list_runs(
            session,
            _actor(session, user),
            status=status,
            run_type=run_type,
            agent=agent,
            platform_key=platform,
            limit=limit,
            cursor=cursor,
        )
        if as_json:
            _print_json({"items": [_run_json(r) for r in rows], "next_cursor": next_cursor})
            return
        out.print(_runs_table(rows))
        if next_cursor:
            out.print(f"[dim]more: --cursor {next_cursor}[/]")


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOpt = False,
    user: UserOpt = None,
) -> None:
    """One run: status, cost, summary, error."""
    from runhq.runs import service as runs

    with _unit_of_work() as (_, session):
        run = runs.get_run(session, _actor(session, user), _parse_id(run_id))
        if as_json:
            _print_json({**_run_json(run), "context": run.context})
        else:
            _print_run(run)


@app.command("approve")
def approve(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    plan_hash: Annotated[
        str | None,
        typer.Option(
            "--plan-hash",
            help="An action run: the plan_hash you reviewed (`runhq plan ID`); refused if the "
            "plan changed since.",
        ),
    ] = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a gated run (owner only)."""
    from runhq.runs import service as runs

    with _unit_of_work() as (_, session):
        run = runs.approve_run(
            session,
            _actor(session, user),
            _parse_id(run_id),
            reason=reason,
            plan_hash=plan_hash,
            ttl=timedelta(hours=_runtime().settings.approval_ttl_hours),
        )
        _done(run, "approved: queued for execution", as_json)


def _plan_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, lists, true), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command("plan")
def plan(
    run_id: Annotated[str, typer.Argument(help="Run id of an action run.")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE to change in the plan (VALUE as JSON, else text); repeatable.",
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A JSON file with the whole new plan.")
    ] = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an action run's plan, or edit it (admin): an edited plan needs a new approval."""
    from runhq.runs import service as runs

    if set_ and file:
        raise InvalidInput(
            "--set and --file both give the plan: choose one", details={"field": "file"}
        )
    with _unit_of_work() as (_, session):
        actor = _actor(session, user)
        run = runs.get_run(session, actor, _parse_id(run_id))
        if run.plan is None:
            raise InvalidInput(
                f"run {run.id} ({run.run_type}) has no plan: only action runs plan before they act",
                details={"field": "run_id"},
            )
        if set_ or file:
            new_plan = dict(run.plan) if set_ else _read_plan(file)
            for item in set_ or []:
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    raise InvalidInput(f"--set {item!r}: write KEY=VALUE", details={"field": "set"})
                new_plan[key.strip()] = _plan_value(value)
            run = runs.update_plan(session, actor, run.id, new_plan)
        shown = {
            "run_id": str(run.id),
            "status": run.status,
            "phase": run.phase,
            "plan_hash": run.plan_hash,
            "plan": run.plan,
        }
    if as_json:
        _print_json(shown)
        return
    out.print(f"run {shown['run_id']}: {shown['status']} ({shown['phase']})")
    out.print(f"plan_hash {shown['plan_hash']}")
    out.print_json(json.dumps(shown["plan"], default=str))
    if set_ or file:
        out.print(
            f"plan edited: it needs a new approval (runhq approve {shown['run_id']} "
            f"--plan-hash {shown['plan_hash']})"
        )


def _read_plan(path: Path | None) -> dict[str, Any]:
    assert path is not None  # noqa: S101 - called with --file only
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror}", details={"field": "file"}
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}", details={"field": "file"}) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}: a plan is a JSON object", details={"field": "file"})
    return value


@app.command("reject")
def reject(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a gated run (owner only)."""
    from runhq.runs import service as runs

    if not reason.strip():
        raise InvalidInput("--reason must not be empty", details={"field": "reason"})
    with _unit_of_work() as (_, session):
        run = runs.reject_run(session, _actor(session, user), _parse_id(run_id), reason=reason)
        _done(run, "rejected", as_json)


@app.command("retry")
def retry(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retry a failed or cancelled run (a new run linked to it)."""
    from runhq.runs import service as runs

    with _unit_of_work() as (runtime, session):
        run = runs.retry_run(
            session,
            _actor(session, user),
            runtime.registry,
            _parse_id(run_id),
            stuck_after=runtime.stuck_after,
            tz=runtime.settings.timezone,
        )
        _done(run, f"retry created ({run.status})", as_json)


@app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run (a running one stops at its next checkpoint)."""
    from runhq.runs import service as runs

    with _unit_of_work() as (_, session):
        run = runs.cancel_run(session, _actor(session, user), _parse_id(run_id))
        _done(run, "cancel requested" if run.status == "running" else "cancelled", as_json)


def _done(run: Run, what: str, as_json: bool) -> None:
    if as_json:
        _print_json(_run_json(run))
    else:
        out.print(f"run {run.id}: {what}")


# --- logs and costs ---------------------------------------------------------------------------


@logs_app.callback(invoke_without_command=True)
def logs_list(
    ctx: typer.Context,
    level: Annotated[LogLevel | None, typer.Option(help="info, warn or error.")] = None,
    source: Annotated[str | None, typer.Option(help="executive-run, autopilot, system…")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run's lines.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="ISO date/time (UTC if no offset).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    as_json: JsonOpt = False,
    user: UserOpt = None,
) -> None:
    """List structured logs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from runhq.logs import service as logs

    if since is not None and since.tzinfo is None:
        from datetime import UTC

        since = since.replace(tzinfo=UTC)
    with _unit_of_work() as (_, session):
        actor = _actor(session, user)
        rows, next_cursor = logs.list_logs(
            session,
            workspace_id=actor.workspace_id,
            level=level,
            source=source,
            run_id=_parse_id(run) if run else None,
            since=since,
            cursor=cursor,
            limit=limit,
        )
        items = [LogOut.model_validate(r).model_dump(mode="json") for r in rows]
        if as_json:
            _print_json({"items": items, "next_cursor": next_cursor})
            return
        table = Table("time", "level", "source", "message", "run", box=None)
        colors = {"error": "red", "warn": "yellow", "info": "default"}
        for r in rows:
            table.add_row(
                r.created_at.astimezone().strftime("%m-%d %H:%M:%S"),
                f"[{colors.get(r.level, '')}]{r.level}[/]",
                r.source,
                r.message,
                str(r.run_id)[:8] if r.run_id else "",
            )
        out.print(table)
        if next_cursor:
            out.print(f"[dim]more: --cursor {next_cursor}[/]")


@logs_app.command("purge")
def logs_purge(
    older_than_days: Annotated[
        int | None, typer.Option(min=1, help="Default: RUNHQ_LOG_RETENTION_DAYS (30).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete log lines older than the retention."""
    from runhq.logs import service as logs

    with _unit_of_work() as (runtime, session):
        days = older_than_days or runtime.settings.log_retention_days
        deleted, cutoff = logs.purge_logs(session, older_than_days=days)
    if as_json:
        _print_json({"deleted": deleted, "older_than": cutoff.isoformat()})
    else:
        out.print(f"{deleted} log lines older than {cutoff:%Y-%m-%d %H:%M} UTC deleted")


@costs_app.callback(invoke_without_command=True)
def costs_report(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month).")] = None,
    as_json: JsonOpt = False,
    user: UserOpt = None,
) -> None:
    """The month's AI costs: total, per run type, per agent, budgets."""
    if ctx.invoked_subcommand is not None:
        return
    from runhq.costs import service as costs

    with _unit_of_work() as (runtime, session):
        actor = _actor(session, user)
        report = costs.get_cost_report(
            session, actor.workspace_id, tz=runtime.settings.timezone, month=month
        )
    if as_json:
        _print_json(report.model_dump(mode="json"))
        return
    out.print(
        f"[bold]{report.month}[/]: €{report.total_cost:.2f} on {report.runs} runs "
        f"(estimated €{report.estimated_total:.2f})"
    )
    for b in report.budgets:
        out.print(
            f"budget {b.scope}: €{b.spent_eur:.2f} spent + €{b.reserved_eur:.2f} "
            f"reserved of €{b.monthly_limit_eur:.2f}"
        )
    table = Table("run type", "runs", "total €", "average €", box=None)
    for line in report.by_run_type:
        table.add_row(
            line.key, str(line.runs), f"{line.total_cost:.4f}", f"{line.average_cost:.4f}"
        )
    out.print(table)
    for line in report.model_calls:
        out.print(
            f"model calls outside runs, {line.key}: {line.runs} calls, €{line.total_cost:.4f}"
        )


@costs_app.command("budget")
def costs_budget(
    limit_eur: Annotated[float, typer.Argument(help="Monthly limit in EUR.", min=0)],
    scope: Annotated[str, typer.Option(help="'global' or an agent key.")] = "global",
) -> None:
    """Set the monthly budget (global or per agent)."""
    from runhq.costs import service as costs

    with _unit_of_work() as (runtime, session):
        if scope != "global" and scope not in runtime.registry.agents:
            raise InvalidInput(
                f"unknown agent {scope!r}; use 'global' or one of "
                f"{', '.join(sorted(runtime.registry.agents))}"
            )
        actor = auth.get_default_owner(session)
        costs.set_budget(session, actor.workspace_id, scope=scope, monthly_limit_eur=limit_eur)
    out.print(f"budget {scope}: €{limit_eur:.2f} per month")


# --- users and API keys -----------------------------------------------------------------------


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument()],
    password: Annotated[str, typer.Option(help="10+ characters.")],
    role: Annotated[Role, typer.Option(help="owner, admin, operator or viewer.")] = Role.viewer,
) -> None:
    """Add a user to the owner's workspace."""
    with _unit_of_work() as (_, session):
        owner = auth.get_default_owner(session)
        auth.create_user(
            session, email=email, password=password, workspace_id=owner.workspace_id, role=role
        )
    out.print(f"user {email} added as {role.value}")


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Users of the owner's workspace: email, role, active."""
    with _unit_of_work() as (_, session):
        members = auth.list_members(session, auth.get_default_owner(session))
    if as_json:
        _print_json([m.model_dump(mode="json") for m in members])
        return
    table = Table("email", "role", "active", "since", box=None)
    for m in members:
        table.add_row(
            m.email, m.role.value, "yes" if m.is_active else "no", m.created_at.isoformat()[:10]
        )
    out.print(table)


@user_app.command("logout")
def user_logout(email: Annotated[str, typer.Argument()]) -> None:
    """End every session of a user (a lost laptop): their JWTs stop working; API keys stay."""
    with _unit_of_work() as (_, session):
        owner = auth.get_default_owner(session)
        auth.revoke_sessions(session, owner, auth.get_member_by_email(session, owner, email))
    out.print(f"every session of {email} ended; they must log in again")


def _set_user_active(email: str, *, active: bool) -> None:
    with _unit_of_work() as (_, session):
        owner = auth.get_default_owner(session)
        user_id = auth.get_member_by_email(session, owner, email)
        revoked = auth.update_user_active(session, owner, user_id, active=active)
    done = f"user {email} {'activated' if active else 'deactivated'}"
    out.print(done + (f"; {revoked} API key(s) revoked" if revoked else ""))


@user_app.command("deactivate")
def user_deactivate(email: Annotated[str, typer.Argument()]) -> None:
    """Deactivate a user: no login; their sessions end and their API keys are revoked."""
    _set_user_active(email, active=False)


@user_app.command("activate")
def user_activate(email: Annotated[str, typer.Argument()]) -> None:
    """Activate a deactivated user again (they log in anew and create new API keys)."""
    _set_user_active(email, active=True)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument()], user: UserOpt = None, as_json: JsonOpt = False
) -> None:
    """Create an API key (printed once; store it now)."""
    with _unit_of_work() as (_, session):
        key, raw = auth.create_api_key(session, _actor(session, user), name=name)
        key_id = key.id
    if as_json:
        _print_json({"id": str(key_id), "name": name, "key": raw})
    else:
        out.print(f"API key {name} ({key_id}):\n[bold]{raw}[/]\nIt is shown only once.")


@apikey_app.command("list")
def apikey_list(user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """Your API keys (never the keys themselves)."""
    from runhq.auth.schemas import ApiKeyOut

    with _unit_of_work() as (_, session):
        keys = [
            ApiKeyOut.model_validate(k).model_dump(mode="json")
            for k in auth.list_api_keys(session, _actor(session, user))
        ]
    if as_json:
        _print_json(keys)
        return
    table = Table("id", "name", "prefix", "created", "revoked", box=None)
    for k in keys:
        table.add_row(
            k["id"], k["name"], k["prefix"], k["created_at"][:16], (k["revoked_at"] or "")[:16]
        )
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument()], user: UserOpt = None) -> None:
    """Revoke an API key."""
    with _unit_of_work() as (_, session):
        auth.revoke_api_key(
            session, _actor(session, user), _parse_id(key_id, "key id", "runhq apikey list")
        )
    out.print(f"API key {key_id} revoked")


# --- execution: worker and scheduler ------------------------------------------------------


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Runs executed at once (default RUNHQ_WORKER_THREADS).")
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "info",
) -> None:
    """Start a Celery worker that executes runs (RUNHQ_BROKER_URL)."""
    import os
    import socket

    from runhq.workers.celery import QUEUE, celery_app, configure_celery

    if pool not in ("prefork", "threads", "solo"):
        raise typer.BadParameter(
            f"must be prefork, threads or solo, not {pool!r}", param_hint="--pool"
        )
    runtime = _runtime()
    _check_schema(runtime)
    runtime.db.dispose()  # no connection may cross the fork into pool processes
    settings = runtime.settings
    configure_celery(celery_app, settings)
    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={loglevel}",
            f"--concurrency={concurrency or settings.worker_threads}",
            f"--pool={pool}",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"runhq-{os.getpid()}@{socket.gethostname()}",
        ]
    )


@app.command()
def scheduler(
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
) -> None:
    """Run the scheduler: schedules, autopilot, reaper, re-dispatch (one leader at a time)."""
    import signal

    from runhq.scheduler.tasks import Scheduler
    from runhq.workers import build_executor

    runtime = _runtime()
    _check_schema(runtime)
    if runtime.settings.executor == "celery":
        runtime.executor = build_executor(runtime)  # publishes what it finds
        runtime.executor.start()
    sched = Scheduler(runtime)
    if once:
        report = sched.tick()
        sched.release()  # a one-off tick must not keep the real schedulers waiting
        _print_json(report.__dict__)
    else:
        from runhq.db.checkpoint import start_wal_checkpointer

        signal.signal(signal.SIGTERM, lambda *_: sched.stop())
        err.print(
            f"scheduler {sched.holder} started (tick {runtime.settings.scheduler_tick_seconds}s)"
        )
        checkpointer = start_wal_checkpointer(runtime.db)  # SQLite only (ADR 0019)
        try:
            sched.run_forever()
        except KeyboardInterrupt:
            sched.stop()
        finally:
            if checkpointer is not None:
                checkpointer.stop()
    if runtime.executor is not None:
        runtime.executor.stop()


# --- schedules and autopilot ---------------------------------------------------------------


def _schedule_json(s: Any) -> dict[str, Any]:
    from runhq.scheduler.service import get_next_firings

    return {
        "job_key": s.job_key,
        "run_type": s.run_type,
        "platform_key": s.platform_key,
        "params": s.params,
        "cron": s.cron,
        "timezone": s.timezone,
        "enabled": s.enabled,
        "last_fired_at": s.last_fired_at.isoformat() if s.last_fired_at else None,
        "next_firings": [f.isoformat() for f in get_next_firings(s)],
    }


@schedules_app.callback(invoke_without_command=True)
def schedules_list(ctx: typer.Context, user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """List schedules with their next 5 firings."""
    if ctx.invoked_subcommand is not None:
        return
    from zoneinfo import ZoneInfo

    from runhq.scheduler import service as schedules

    with _unit_of_work() as (_, session):
        items = [
            _schedule_json(s)
            for s in schedules.list_schedules(session, _actor(session, user).workspace_id)
        ]
    if as_json:
        _print_json(items)
        return
    table = Table("job", "run type", "cron", "tz", "on", "next firings (local)", box=None)
    for item in items:
        zone = ZoneInfo(item["timezone"])
        nxt = ", ".join(
            datetime.fromisoformat(f).astimezone(zone).strftime("%a %d %H:%M")
            for f in item["next_firings"][:3]
        )
        table.add_row(
            item["job_key"],
            item["run_type"],
            item["cron"],
            item["timezone"],
            "yes" if item["enabled"] else "no",
            nxt,
        )
    out.print(table)


@schedules_app.command("add")
def schedules_add(
    job_key: Annotated[str, typer.Argument(help="Your name for the job, e.g. daily-brief.")],
    run_type: Annotated[str, typer.Argument(help="A key of `runhq types`.")],
    cron: Annotated[str, typer.Option(help="5-field cron, e.g. '30 7 * * 1-5'.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone.")] = "Europe/Paris",
    platform: Annotated[str | None, typer.Option("--platform")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p")] = None,
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a schedule."""
    from runhq.scheduler import service as schedules
    from runhq.scheduler.schemas import ScheduleIn

    body = _validated(
        ScheduleIn,
        job_key=job_key,
        run_type=run_type,
        cron=cron,
        timezone=tz,
        platform_key=platform,
        params=_parse_params(param or [], None),
        enabled=not disabled,
    )
    with _unit_of_work() as (runtime, session):
        s = schedules.create_schedule(
            session, _actor(session, user), runtime.registry, **body.model_dump()
        )
        item = _schedule_json(s)
    if as_json:
        _print_json(item)
    else:
        out.print(f"schedule {job_key} added; next: {', '.join(item['next_firings'][:3])}")


def _set_enabled(job_key: str, enabled: bool, user: str | None) -> None:
    from runhq.scheduler import service as schedules

    with _unit_of_work() as (runtime, session):
        schedules.update_schedule(
            session, _actor(session, user), runtime.registry, job_key, {"enabled": enabled}
        )
    out.print(f"schedule {job_key} {'enabled' if enabled else 'disabled'}")


@schedules_app.command("enable")
def schedules_enable(job_key: Annotated[str, typer.Argument()], user: UserOpt = None) -> None:
    """Enable a schedule (it fires from now on, not for the past)."""
    _set_enabled(job_key, True, user)


@schedules_app.command("disable")
def schedules_disable(job_key: Annotated[str, typer.Argument()], user: UserOpt = None) -> None:
    """Disable a schedule."""
    _set_enabled(job_key, False, user)


@schedules_app.command("remove")
def schedules_remove(job_key: Annotated[str, typer.Argument()], user: UserOpt = None) -> None:
    """Delete a schedule."""
    from runhq.scheduler import service as schedules

    with _unit_of_work() as (_, session):
        schedules.delete_schedule(session, _actor(session, user), job_key)
    out.print(f"schedule {job_key} removed")


def _autopilot_set(enabled: bool, interval: int | None, user: str | None, as_json: bool) -> None:
    from runhq.scheduler import autopilot

    with _unit_of_work() as (runtime, session):
        row = autopilot.set_autopilot(
            session,
            _actor(session, user),
            enabled=enabled,
            interval_minutes=interval,
            default_interval=runtime.settings.autopilot_interval_minutes,
        )
        state = {
            "enabled": row.enabled,
            "interval_minutes": row.interval_minutes,
            "mode": "deterministic" if runtime.gateway.offline else "model",
        }
    if as_json:
        _print_json(state)
    else:
        out.print(
            f"autopilot {'on' if enabled else 'off'} (every {state['interval_minutes']} "
            f"min, {state['mode']})"
        )


@autopilot_app.command("on")
def autopilot_on(
    interval: Annotated[
        int | None, typer.Option(min=1, max=1440, help="Minutes between cycles.")
    ] = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Switch the autopilot on."""
    _autopilot_set(True, interval, user, as_json)


@autopilot_app.command("off")
def autopilot_off(user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """Switch the autopilot off (schedules fire by cron again)."""
    _autopilot_set(False, None, user, as_json)


@autopilot_app.command("status")
def autopilot_status(user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """Is the autopilot on, in which mode, and when does it wake next."""
    from runhq.scheduler import autopilot

    with _unit_of_work() as (runtime, session):
        row = autopilot.get_autopilot(
            session, _actor(session, user).workspace_id, runtime.settings.autopilot_interval_minutes
        )
        state = {
            "enabled": row.enabled,
            "interval_minutes": row.interval_minutes,
            "mode": "deterministic" if runtime.gateway.offline else "model",
            "last_cycle_at": row.last_cycle_at.isoformat() if row.last_cycle_at else None,
            "next_cycle_at": row.next_cycle_at.isoformat() if row.next_cycle_at else None,
        }
    if as_json:
        _print_json(state)
    else:
        out.print(
            f"autopilot {'on' if state['enabled'] else 'off'} · every "
            f"{state['interval_minutes']} min · {state['mode']} · next "
            f"{state['next_cycle_at'] or '—'}"
        )


@autopilot_app.command("decisions")
def autopilot_decisions(
    limit: Annotated[int, typer.Option(min=1, max=200)] = 5,
    cursor: Annotated[str | None, typer.Option()] = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The decision journal: what was proposed, accepted, refused, and why."""
    from runhq.scheduler import autopilot

    with _unit_of_work() as (_, session):
        rows, next_cursor = autopilot.list_decisions(
            session, _actor(session, user).workspace_id, cursor=cursor, limit=limit
        )
        items = [
            {
                "id": str(r.id),
                "created_at": r.created_at.isoformat(),
                **{k: v for k, v in r.meta.items() if k != "snapshot"},
            }
            for r in rows
        ]
    if as_json:
        _print_json({"items": items, "next_cursor": next_cursor})
        return
    for item in items:
        out.print(
            f"[bold]{item['created_at'][:16]}[/] ({item.get('mode')}, Paris "
            f"{item.get('paris_hour')}h) accepted: {', '.join(item.get('accepted', [])) or '—'}"
        )
        for r in item.get("rejected", []):
            out.print(f"  refused {r['job_key']}: {r['reason']}")
        out.print(f"  [dim]{item.get('reasoning')}[/]")


# --- contacts (MASS_EMAIL_CAMPAIGN's audience) ------------------------------------------


_YES = {"1", "true", "yes", "y", "oui", "o", "x"}
_NO = {"", "0", "false", "no", "n", "non"}


def _read_contacts_csv(path: Path, consent: bool | None) -> list[dict[str, Any]]:
    """Rows of a CSV with an ``email`` column (``name``, ``consent`` optional); a bad file or
    row is one error naming its line, before anything is written."""
    import csv

    from runhq.actions.schemas import ContactIn

    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror}", details={"field": "path"}
        ) from None
    with handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        columns = {(c or "").strip().lower() for c in reader.fieldnames or []}
        if "email" not in columns:
            raise InvalidInput(
                f"{path}: no 'email' column (found: {', '.join(sorted(columns)) or 'nothing'})",
                details={"field": "email"},
            )
        if consent is None and "consent" not in columns:
            raise InvalidInput(
                f"{path}: no 'consent' column: add one, or say --consent or --no-consent for "
                "every row (only contacts who agreed may receive campaigns)",
                details={"field": "consent"},
            )
        rows = []
        for row in reader:
            line = reader.line_num
            cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            given = consent
            if given is None:
                raw = cells.get("consent", "").lower()
                if raw not in _YES | _NO:
                    raise InvalidInput(
                        f"line {line}: consent {cells.get('consent')!r} is not yes or no",
                        details={"line": line, "field": "consent"},
                    )
                given = raw in _YES
            try:
                _validated(ContactIn, email=cells["email"], name=cells.get("name"), consent=given)
            except InvalidInput as exc:
                raise InvalidInput(
                    f"line {line}: {exc.message}", details={**exc.details, "line": line}
                ) from None
            rows.append(
                {"email": cells["email"], "name": cells.get("name") or None, "consent": given}
            )
    return rows


@contacts_app.callback(invoke_without_command=True)
def contacts_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The contacts, newest first (personal data: admins and owners)."""
    if ctx.invoked_subcommand is not None:
        return
    from runhq.actions import campaigns
    from runhq.actions.schemas import ContactOut

    with _unit_of_work() as (_, session):
        actor = _actor(session, user)
        rows, next_cursor = campaigns.list_contacts(session, actor, cursor=cursor, limit=limit)
        items = [ContactOut.model_validate(c).model_dump(mode="json") for c in rows]
        audience = campaigns.count_audience(session, actor.workspace_id)
    if as_json:
        _print_json({"items": items, "next_cursor": next_cursor})
        return
    table = Table("email", "name", "consent", "unsubscribed", "added", box=None)
    for c in items:
        table.add_row(
            c["email"],
            c["name"] or "",
            "yes" if c["consent"] else "no",
            (c["unsubscribed_at"] or "")[:10],
            c["created_at"][:10],
        )
    out.print(table)
    out.print(f"audience of a campaign now: {audience}")
    if next_cursor:
        out.print(f"[dim]more: --cursor {next_cursor}[/]")


@contacts_app.command("import")
def contacts_import(
    path: Annotated[Path, typer.Argument(help="A CSV file with an email column.")],
    consent: Annotated[
        bool | None,
        typer.Option(
            "--consent/--no-consent",
            help="Every row's consent (default: the file's consent column, yes/no).",
        ),
    ] = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or update contacts from a CSV (email, name, consent); all rows or none."""
    from runhq.actions import campaigns

    rows = _read_contacts_csv(path, consent)
    with _unit_of_work() as (_, session):
        actor = _actor(session, user)
        written = campaigns.import_contacts(session, actor, rows)
        audience = campaigns.count_audience(session, actor.workspace_id)
    if as_json:
        _print_json({"written": written, "audience": audience})
    else:
        out.print(f"{written} contacts written; audience of a campaign now: {audience}")


@contacts_app.command("erase")
def contacts_erase(
    email: Annotated[str, typer.Argument()],
    user: UserOpt = None,
) -> None:
    """Erase a contact and its delivery records (RGPD right to erasure)."""
    from runhq.actions import campaigns

    with _unit_of_work() as (_, session):
        campaigns.delete_contact(session, _actor(session, user), email)
    out.print(f"contact {email} erased, with its delivery records")


# --- platforms ----------------------------------------------------------------------------


@platforms_app.callback(invoke_without_command=True)
def platforms_list(ctx: typer.Context, user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """Platforms with status, open incident and uptime."""
    if ctx.invoked_subcommand is not None:
        return
    from runhq.platforms import service as platforms
    from runhq.platforms.routes import to_out

    with _unit_of_work() as (_, session):
        actor = _actor(session, user)
        items = [
            p.model_dump(mode="json")
            for p in to_out(session, actor, platforms.list_platforms(session, actor.workspace_id))
        ]
    if as_json:
        _print_json(items)
        return
    table = Table("key", "name", "status", "uptime 24h", "7d", "30d", "incident", box=None)
    for p in items:
        cells = [f"{u['uptime']:.2%}" if u["uptime"] is not None else "—" for u in p["uptime"]]
        incident = p["open_incident"]["reason"] if p["open_incident"] else ""
        table.add_row(p["key"], p["name"], p["status"], *cells, incident)
    out.print(table)


@platforms_app.command("add")
def platforms_add(
    key: Annotated[str, typer.Argument(help="The runs' platform_key, e.g. app.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    health_url: Annotated[list[str] | None, typer.Option("--health-url")] = None,
    expected_status: Annotated[int, typer.Option()] = 200,
    expected_body: Annotated[str | None, typer.Option()] = None,
    interval: Annotated[int, typer.Option(help="Seconds between checks.")] = 60,
    threshold: Annotated[int, typer.Option(help="Failed checks that open an incident.")] = 3,
    repository: Annotated[str | None, typer.Option(help="owner/name on GitHub.")] = None,
    webhook: WebhookOpt = None,
    secret_env: SecretEnvOpt = None,
    workflow: WorkflowOpt = None,
    token_env: TokenEnvOpt = None,
    ref: RefOpt = None,
    database_url_env: DatabaseEnvOpt = None,
    user: UserOpt = None,
) -> None:
    """Add a platform to watch (and, optionally, how deployments act on it)."""
    from runhq.platforms import service as platforms
    from runhq.platforms.schemas import PlatformIn

    body = _validated(
        PlatformIn,
        key=key,
        name=name,
        health_urls=health_url or [],
        expected_status=expected_status,
        expected_body=expected_body,
        check_interval_seconds=interval,
        failure_threshold=threshold,
        repository=repository,
    )
    fields = body.model_dump()
    fields["deploy_target"] = _deploy_target(
        webhook, secret_env, workflow, token_env, ref, database_url_env
    )
    with _unit_of_work() as (_, session):
        platforms.create_platform(session, _actor(session, user), **fields)
    out.print(f"platform {key} added")


WebhookOpt = Annotated[
    str | None, typer.Option("--webhook", help="Deploy: POST a signed request to this URL.")
]
SecretEnvOpt = Annotated[
    str | None, typer.Option("--secret-env", help="Deploy webhook: variable with the secret.")
]
WorkflowOpt = Annotated[
    str | None,
    typer.Option("--github-workflow", help="Deploy: dispatch this workflow (file or id)."),
]
TokenEnvOpt = Annotated[
    str | None, typer.Option("--token-env", help="GitHub deploy: variable with the token.")
]
RefOpt = Annotated[str | None, typer.Option("--ref", help="GitHub deploy: default ref.")]
DatabaseEnvOpt = Annotated[
    str | None,
    typer.Option("--database-url-env", help="RLS updates: variable with the PostgreSQL URL."),
]


def _deploy_target(
    webhook: str | None,
    secret_env: str | None,
    workflow: str | None,
    token_env: str | None,
    ref: str | None,
    database_url_env: str | None,
) -> dict[str, Any]:
    """The deploy target the options describe (checked by the platforms service)."""
    if webhook and workflow:
        raise InvalidInput(
            "--webhook and --github-workflow are two kinds of target: choose one",
            details={"field": "deploy_target.type"},
        )
    target: dict[str, Any] = {
        "url": webhook,
        "secret_env": secret_env,
        "workflow": workflow,
        "token_env": token_env,
        "ref": ref,
        "database_url_env": database_url_env,
    }
    if webhook or secret_env:
        target["type"] = "webhook"
    elif workflow or token_env or ref:
        target["type"] = "github"
    return {k: v for k, v in target.items() if v is not None}


@platforms_app.command("target")
def platforms_target(
    key: Annotated[str, typer.Argument()],
    webhook: WebhookOpt = None,
    secret_env: SecretEnvOpt = None,
    workflow: WorkflowOpt = None,
    token_env: TokenEnvOpt = None,
    ref: RefOpt = None,
    database_url_env: DatabaseEnvOpt = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the deploy target.")] = False,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or set how DEPLOY_TO_PRODUCTION and RLS_POLICY_UPDATE act on a platform (the
    options replace the whole target; variables are named, never their secret values)."""
    from runhq.platforms import service as platforms

    target = _deploy_target(webhook, secret_env, workflow, token_env, ref, database_url_env)
    if clear and target:
        raise InvalidInput("--clear takes no other option", details={"field": "clear"})
    with _unit_of_work() as (_, session):
        actor = _actor(session, user)
        if target or clear:
            platform = platforms.update_platform(session, actor, key, {"deploy_target": target})
        else:
            platform = platforms.get_platform(session, actor.workspace_id, key)
        shown = platforms.get_visible_deploy_target(platform, actor)
    if as_json:
        _print_json(shown)
    elif not shown:
        out.print(f"{key}: no deploy target")
    else:
        out.print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


@platforms_app.command("check")
def platforms_check(
    key: Annotated[str, typer.Argument()], user: UserOpt = None, as_json: JsonOpt = False
) -> None:
    """Check a platform now."""
    import httpx

    from runhq.platforms import service as platforms
    from runhq.platforms.routes import to_out

    with _unit_of_work() as (_, session), httpx.Client() as client:
        actor = _actor(session, user)
        platform = platforms.get_platform(session, actor.workspace_id, key)
        session.commit()  # nothing held while the endpoint answers (see the API's check)
        results = platforms.probe_platform(client, platform)
        if results:
            platforms.record_check(session, platform, results)
        item = to_out(session, actor, [platform])[0].model_dump(mode="json")
    if as_json:
        _print_json(item)
    else:
        out.print(f"{key}: {item['status']}")


@platforms_app.command("remove")
def platforms_remove(key: Annotated[str, typer.Argument()], user: UserOpt = None) -> None:
    """Stop watching a platform (its checks and incidents are deleted)."""
    from runhq.platforms import service as platforms

    with _unit_of_work() as (_, session):
        platforms.delete_platform(session, _actor(session, user), key)
    out.print(f"platform {key} removed")


class _OneLineFormatter(logging.Formatter):
    """CLI log lines without tracebacks: the run's error and its logs carry the details."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class _CurrentStderr(logging.Handler):
    """Writes to whatever sys.stderr is at the time (not the stream of start-up)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _configure_logging() -> None:
    if sys.argv[1:2] == ["serve"]:
        return  # the server logs in full (uvicorn's configuration)
    handler = _CurrentStderr()
    handler.setFormatter(_OneLineFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def main() -> None:
    """Entry point: expected failures print one clear line and exit 1, never a traceback."""
    _configure_logging()
    try:
        app()
    except RunhqError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        sys.exit(1)
