"""The run pipeline (seed 001): gather context → claim → call the model → validate → store.

The facts are gathered before the claim, which stores them with the prompt (ADR 0012): a
crash while gathering leaves the run queued, a crash during the model call leaves it running
with the facts and prompt already stored (replayable). Each step that writes is its own
transaction. This module is a task boundary: it commits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.actions import service as actions
from runhq.config import Settings
from runhq.context.schemas import ContextRequest
from runhq.context.service import gather_context
from runhq.db.session import (
    allow_async_commit,
    make_reader_factory,
    self_contained_writes,
    transaction,
)
from runhq.llm.gateway import (
    Completion,
    Gateway,
    ModelUnavailable,
    render_offline,
)
from runhq.llm.output import format_instructions, parse_gate_report, parse_report
from runhq.registry.schemas import RunTypeSpec
from runhq.registry.service import Registry
from runhq.runs import service as runs_service
from runhq.runs.models import Run, RunStatus
from runhq.runs.service import plan_digest
from runhq.runs.state import (
    AnyRun,
    RunRecord,
    StaleTransition,
    claim,
    get_run_record,
    record_heartbeat,
    refresh_state,
    transition,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prepared:
    """What a worker gathers for a run before claiming it: stored by the claim."""

    spec: RunTypeSpec
    context: dict[str, Any]
    prompt: dict[str, Any]  # {messages, model, fallback_model}: what the model is sent


# The report language (RUNHQ_REPORT_LANGUAGE) as the prompt names it.
LANGUAGE_NAMES = {"fr": "French", "en": "English"}


def build_messages(
    spec: RunTypeSpec, persona: str, context: dict[str, Any], lang: str = "fr"
) -> list[dict[str, str]]:
    """The prompt: the agent's persona and task as system, the facts (JSON) as user. The
    instructions are in English; the report is asked for in ``lang``."""
    system = (
        f"{persona}\n\n## Task: {spec.label.en}\n{spec.task_prompt}\n\n"
        f"Steps: {'; '.join(spec.steps)}.\n\n"
        f"{format_instructions(spec.output_sections, gate=spec.gate)}\n"
        f"Write every text of the report in {LANGUAGE_NAMES[lang]}; keep the JSON keys and "
        "the verdict values as specified."
    )
    user = "Facts gathered for this run (JSON). Base every statement on them.\n" + json.dumps(
        context, ensure_ascii=False, default=str
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _topic(spec: RunTypeSpec, params: dict[str, Any], platform_key: str | None) -> str:
    for key in ("query", "topic", "competitors", "market", "url", "focus"):
        value = params.get(key)
        if value:
            return " ".join(value) if isinstance(value, list) else str(value)
    return f"{spec.label.en} {platform_key or ''}".strip()


def _sanitise(exc: BaseException) -> str:
    if isinstance(exc, ModelUnavailable):
        return str(exc)[:2000]
    return f"internal error ({type(exc).__name__}); see the structured logs of this run"


class Engine:
    """Executes runs. Stateless between runs: everything is read from and written to the DB."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        registry: Registry,
        gateway: Gateway | None = None,
    ) -> None:
        self.sessions = session_factory
        bind = session_factory.kw.get("bind")
        assert isinstance(bind, DbEngine | Connection)  # noqa: S101 - a bound factory
        self._bind: DbEngine | Connection = bind
        # Bound to one connection (tests run each in a transaction they roll back): read
        # through it too, so the facts see what the test wrote.
        self.readers = make_reader_factory(bind) if isinstance(bind, DbEngine) else session_factory
        reader_bind = self.readers.kw.get("bind")
        assert isinstance(reader_bind, DbEngine | Connection)  # noqa: S101 - a bound factory
        self._reader_bind: DbEngine | Connection = reader_bind
        self.settings = settings
        self.registry = registry
        self.gateway = gateway or Gateway(settings)
        self._beating: dict[uuid.UUID, uuid.UUID] = {}
        self._beat_lock = threading.Lock()
        self._beat_thread: threading.Thread | None = None

    def execute(self, run_id: uuid.UUID) -> RunStatus | None:
        """Run ``run_id`` if it is queued. Returns its final status, or None if not ours."""
        began, started = clock.now(), time.monotonic()
        # The facts are gathered before the claim and stored by it: one transaction fewer,
        # and a worker lost while gathering leaves the run queued (the dispatcher sends it
        # again) instead of failed. Read outside any transaction: no lock is held (SQLite's
        # write lock included) while providers query the history or wait on another service.
        failure: Exception | None = None
        prepared: _Prepared | None = None
        with self._reading() as conn:
            run = get_run_record(conn, run_id)
            if run is None or run.status != RunStatus.queued.value:
                return None  # another worker has it, or it was cancelled/approved away
            if run.phase != "act":
                try:
                    prepared = self._prepare(conn, run, began)
                except Exception as exc:  # failed once claimed: never left queued to loop
                    logger.exception("run %s: preparing its prompt failed", run_id)
                    failure = exc
            # The claim goes on this connection: no second checkout.
            with self._write(reuse=conn) as writer:
                claimed = claim(
                    writer,
                    run,
                    started_at=began,
                    context=prepared.context if prepared else None,
                    prompt=prepared.prompt if prepared else None,
                )
        if not claimed:  # claimed by another worker, or cancelled, while this one gathered
            return None
        if failure is not None:
            return self._fail(run, started, failure)
        if prepared is None:  # the act phase of an approved plan
            with self._heartbeat(run), self.sessions() as session:
                loaded = session.get(Run, run.id)
                assert loaded is not None  # noqa: S101 - claimed above, runs are never deleted
                return self._act(session, loaded, started)
        spec = prepared.spec
        try:
            with self._heartbeat(run):
                completion = self._call_model(prepared, deadline=started + spec.timeout_seconds)
        except Exception as exc:
            logger.exception("run %s failed", run_id)
            return self._fail(run, started, exc)
        if spec.gate:
            self._ensure_verdict(run, completion)
        values = {
            "output": completion.output,
            "executive_summary": completion.output["executive_summary"],
            "model_used": completion.model_used,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "actual_cost": completion.cost_eur,
            "price": {
                **completion.price,
                "provider": completion.provider,
                "calls": completion.calls,
                "notes": completion.notes,
            },
        }
        if run.phase == "plan":
            # An action run stops at its plan: the owner approves this plan, then it acts.
            with self.readers() as reader:
                loaded = reader.get(Run, run.id)
                assert loaded is not None  # noqa: S101 - claimed above, runs are never deleted
                plan = actions.build_plan(reader, spec, loaded, completion.output)
            values.update(plan=plan, plan_hash=plan_digest(plan), phase="review")
            return self._finish(
                run,
                RunStatus.pending_approval,
                started,
                values=values,
                log_metadata={"plan_hash": values["plan_hash"]},
            )
        return self._finish(run, RunStatus.completed, started, values=values)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """Where the worker reads before its claim: a Core connection whose statements each
        commit on their own (``make_reader_factory``), so no lock or snapshot is held while
        the providers query the history or wait on another service."""
        if isinstance(self._reader_bind, DbEngine):
            with self._reader_bind.connect() as conn:
                yield conn
        else:  # bound to one connection in a transaction the test rolls back
            yield self._reader_bind

    def _reader_session(self, conn: Connection) -> Session:
        """The context providers query through the ORM: a session on the reading connection."""
        if isinstance(self._reader_bind, DbEngine):
            return Session(bind=conn, autoflush=False, expire_on_commit=False)
        return self.sessions()  # bound to the test's connection, as ``conn`` is

    @contextmanager
    def _write(self, reuse: Connection | None = None) -> Iterator[Connection]:
        """Where each step of the pipeline writes, on a Core connection (the steps write by
        statement, never by object): one transaction on SQLite; on PostgreSQL each change
        and its log line are one statement (``runs.state``), sent in autocommit (ADR 0014).
        ``reuse``: the reading connection, when the step follows the read."""
        if isinstance(self._bind, DbEngine):
            with self_contained_writes(self._bind, reuse=reuse) as conn:
                yield conn
        else:  # bound to one connection in a transaction the test rolls back
            with self._bind.begin_nested():
                yield self._bind

    def _ensure_verdict(self, run: RunRecord, completion: Completion) -> None:
        """A gate run's output carries verdict pass/fail: the model's, else by rule."""
        output = completion.output
        if output.get("verdict") in ("pass", "fail"):
            output.setdefault("verdict_reasons", [])
            output["verdict_by"] = completion.model_used
            return
        exempt = [k for k, t in self.registry.run_types.items() if t.gate or t.action]
        verdict, reasons = actions.gate_verdict(
            run.context or {},
            run.platform_key,
            exempt_types=exempt,
            lang=self.settings.report_language,
        )
        output.update(verdict=verdict, verdict_reasons=reasons, verdict_by="rule")

    def _act(self, session: Session, run: Run, started: float) -> RunStatus:
        """The act phase: check the approval and the world, mark the attempt, act once."""

        def fail(reason: str, **extra: Any) -> RunStatus:
            return self._finish(
                run,
                RunStatus.failed,
                started,
                values={"error": reason, **extra},
                log_metadata={"error_message": reason},
                session=session,
            )

        if runs_service.get_valid_approval(session, run) is None:
            return fail(
                "no valid approval for this plan (edited, or expired): "
                "review the plan and approve it again"
            )
        if run.action_started_at is not None:
            return fail(
                "the action was already attempted and its outcome is unknown: "
                "check the target before retrying"
            )
        try:
            actions.check_preconditions(session, run, self.settings)
        except actions.ActionRefused as exc:
            return fail(f"refused to act: {exc.reason}")
        run.action_started_at = clock.now()
        run.updated_at = clock.now()
        session.commit()  # from here on, never again: a second attempt is refused above
        try:
            result = actions.perform(session, run, self.settings, self.sessions)
        except actions.ActionRefused as exc:
            return fail(f"refused to act: {exc.reason}")
        except actions.ActionFailed as exc:
            return fail(
                f"action failed: {exc.reason}",
                action_result={"ok": False, "reason": exc.reason, "retryable": exc.retryable},
            )
        except Exception as exc:  # outcome unknown: never retried automatically
            logger.exception("action of run %s raised", run.id)
            return fail(
                f"action failed ({type(exc).__name__}); its outcome is unknown: check "
                "the target before retrying"
            )
        session.commit()
        summary = f"{(run.plan or {}).get('action', 'action')} done: {result.summary}"
        return self._finish(
            run,
            RunStatus.completed,
            started,
            values={
                "action_result": {"ok": result.ok, "summary": result.summary, **result.details},
                "executive_summary": summary,
            },
            session=session,
        )

    def _prepare(self, conn: Connection, run: RunRecord, now: datetime) -> _Prepared:
        """The facts (read through ``conn``, each query on its own) and the prompt."""
        spec = self.registry.get(run.run_type)
        with self._reader_session(conn) as session:
            req = ContextRequest(
                session=session,
                settings=self.settings,
                workspace_id=run.workspace_id,
                run_id=run.id,
                run_type=run.run_type,
                platform_key=run.platform_key,
                params=run.params,
                topic=_topic(spec, run.params, run.platform_key),
                now=now,
            )
            context = gather_context(req, spec.context)
        persona = self.registry.agents[spec.agent].persona
        messages = build_messages(spec, persona, context, self.settings.report_language)
        prompt = {"messages": messages, "model": spec.model, "fallback_model": spec.fallback_model}
        return _Prepared(spec=spec, context=context, prompt=prompt)

    def _call_model(self, prepared: _Prepared, *, deadline: float) -> Completion:
        # Nothing (not SQLite's write lock either) is held during the model call; the facts
        # and the prompt were committed with the claim, kept even if it never returns.
        spec = prepared.spec
        if self.gateway.offline:
            return render_offline(
                label=spec.label.get(self.settings.report_language),
                sections=spec.output_sections,
                context=prepared.context,
                lang=self.settings.report_language,
            )
        return self.gateway.complete(
            model=spec.model,
            fallback_model=spec.fallback_model,
            messages=prepared.prompt["messages"],
            deadline=deadline,
            parse=parse_gate_report if spec.gate else parse_report,
        )

    def _fail(self, run: RunRecord, started: float, exc: Exception) -> RunStatus:
        """The run failed with ``exc``: its reason for everyone, its stack for the logs."""
        values: dict[str, Any] = {"error": _sanitise(exc)}
        if isinstance(exc, ModelUnavailable) and (exc.tokens_in or exc.tokens_out):
            values.update(
                tokens_in=exc.tokens_in,
                tokens_out=exc.tokens_out,
                actual_cost=exc.cost,
                model_used=exc.model,
            )
        meta = {"error_message": values["error"]}
        if self.settings.env != "production":
            meta["error_stack"] = "".join(traceback.format_exception(exc))[-4000:]
        return self._finish(run, RunStatus.failed, started, values=values, log_metadata=meta)

    @contextmanager
    def _heartbeat(self, run: AnyRun) -> Iterator[None]:
        """Keep ``run`` marked alive while this block runs (one beating thread per engine)."""
        token = run.claim_token
        assert token is not None  # noqa: S101 - set by the claim
        with self._beat_lock:
            self._beating[run.id] = token
            if self._beat_thread is None or not self._beat_thread.is_alive():
                self._beat_thread = threading.Thread(
                    target=self._beat_forever, name="runhq-heartbeat", daemon=True
                )
                self._beat_thread.start()
        try:
            yield
        finally:
            with self._beat_lock:
                self._beating.pop(run.id, None)

    def _beat_forever(self) -> None:
        while True:
            time.sleep(self.settings.heartbeat_seconds)
            with self._beat_lock:
                beating = list(self._beating.items())
            if not beating:
                continue
            try:
                with transaction(self.sessions) as session:
                    allow_async_commit(session)  # a lost beat is tolerated anyway
                    for run_id, token in beating:
                        if not record_heartbeat(session, run_id, token):
                            # Finished, reaped or cancelled meanwhile: stop beating for it.
                            with self._beat_lock:
                                self._beating.pop(run_id, None)
            except Exception:  # a missed beat is tolerated; the reaper allows several
                logger.warning("heartbeat failed", exc_info=True)

    def _finish(
        self,
        run: AnyRun,
        status: RunStatus,
        started: float,
        *,
        values: dict[str, Any],
        log_metadata: dict[str, Any] | None = None,
        session: Session | None = None,
    ) -> RunStatus:
        """The final transition, in ``session`` if the act phase holds one (committed)."""
        values = {**values, "duration_ms": int((time.monotonic() - started) * 1000)}
        # A cancel requested during the model call wins over completion; what the call
        # cost is still recorded on the cancelled run.
        kwargs: dict[str, Any] = {
            "values": values,
            "log_metadata": log_metadata,
            "unless_cancel_requested": status == RunStatus.completed,
            "claim_token": run.claim_token,
        }
        try:
            if session is None:
                with self._write() as conn:
                    transition(conn, run, status, **kwargs)
            else:
                transition(session, run, status, **kwargs)
                session.commit()
            return status
        except StaleTransition:
            if session is not None:
                session.rollback()
        if session is not None:
            # The rollback expired the loaded run: it is re-read in the same session (another
            # connection would wait for this one's lock on SQLite).
            settled = self._settle(session, run, values)
            session.commit()
            return settled
        with self._write() as conn:
            return self._settle(conn, run, values)

    def _settle(self, conn: Session | Connection, run: AnyRun, values: dict[str, Any]) -> RunStatus:
        """After losing the final compare-and-set: a cancel wins, a lost claim is left."""
        current = refresh_state(conn, run)
        if current != RunStatus.running:
            logger.warning("run %s was %s while this worker ran it (claim lost)", run.id, current)
        elif run.cancel_requested:
            values["error"] = "cancelled while running"
            transition(conn, run, RunStatus.cancelled, values=values)
            return RunStatus.cancelled
        return current
