"""Plans, preconditions and the act phase of action runs (DEPLOY_TO_PRODUCTION, …).

An action run first produces a plan (what will be done, to what, with which parameters);
the owner approves that plan (bound to its hash, with an expiry); only then the act phase
calls the action connector, once: ``action_started_at`` is written and committed before
the call, so a crash or a redelivered task can never send it a second time.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.actions.connectors.base import ActionFailed, ActionResult
from runhq.actions.connectors.github import dispatch_workflow
from runhq.actions.connectors.postgres_policies import apply_policies
from runhq.actions.connectors.stripe import change_price
from runhq.actions.connectors.webhook import deploy_webhook
from runhq.config import Settings
from runhq.errors import NotFound
from runhq.i18n import get_translator
from runhq.platforms import service as platforms
from runhq.registry.schemas import RunTypeSpec
from runhq.runs import service as runs
from runhq.runs.models import Run

GATE_RUN_TYPE = "RELEASE_GATE_CHECK"


class ActionRefused(Exception):
    """A precondition does not hold: the act phase does nothing and says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _public_target(target: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in target.items() if "secret" not in k and "token" not in k}


def build_plan(
    session: Session, spec: RunTypeSpec, run: Run, report: dict[str, Any]
) -> dict[str, Any]:
    """What the act phase will do, as data the owner approves (no secret in it)."""
    plan: dict[str, Any] = {
        "action": spec.action,
        "run_type": run.run_type,
        "platform_key": run.platform_key,
        "parameters": run.params,
        "assessment": str(report.get("executive_summary", ""))[:1000],
    }
    if spec.action == "deploy":
        target: dict[str, Any] = {}
        if run.platform_key:
            try:
                platform = platforms.get_platform(session, run.workspace_id, run.platform_key)
                target = _public_target(platform.deploy_target)
                plan["repository"] = platform.repository
            except Exception:  # noqa: BLE001 - an unknown platform is reported in the plan
                target = {}
        plan["target"] = target or {"error": "no deploy target configured for this platform"}
        # What is approved is what is sent: the act reads the ref from the plan.
        plan["ref"] = run.params.get("ref") or platform_ref(session, run)
    if spec.action == "rls":
        # The SQL is what gets approved: from the parameters or the model's report; an
        # owner can write or correct it by editing the plan.
        plan["table"] = run.params.get("table")
        plan["sql"] = run.params.get("sql") or report.get("sql")
    if spec.action == "email":
        from runhq.actions.campaigns import count_audience

        sections = report.get("sections") or [{}]
        plan["subject"] = run.params.get("subject")
        plan["message"] = run.params.get("body") or str(sections[0].get("content", ""))
        plan["audience"] = {
            "consented_contacts": count_audience(session, run.workspace_id),
            "rule": "contacts with consent who have not unsubscribed",
        }
    return plan


def platform_ref(session: Session, run: Run) -> str | None:
    """The ref a deploy uses when none is given: the GitHub target's, else none (the
    webhook receiver deploys its default)."""
    if not run.platform_key:
        return None
    try:
        target = platforms.get_platform(session, run.workspace_id, run.platform_key).deploy_target
    except NotFound:
        return None
    return str(target["ref"]) if target.get("type") == "github" and target.get("ref") else None


def check_preconditions(session: Session, run: Run, settings: Settings) -> None:
    """Refuse to act when the world is not as the approval assumed."""
    plan = run.plan or {}
    if plan.get("action") != "deploy":
        return
    if not run.platform_key:
        raise ActionRefused("a deploy needs a platform_key")
    try:
        platform = platforms.get_platform(session, run.workspace_id, run.platform_key)
    except NotFound:
        raise ActionRefused(
            f"platform {run.platform_key!r} is not registered (runhq platforms add)"
        ) from None
    incident = platforms.get_open_incident(session, platform.id)
    if incident is not None:
        raise ActionRefused(
            f"platform {platform.key} has an open incident since "
            f"{incident.opened_at:%Y-%m-%d %H:%M} UTC: {incident.reason}"
        )
    max_age = timedelta(hours=settings.release_gate_max_age_hours)
    gate = runs.get_latest_gate(
        session, run.workspace_id, GATE_RUN_TYPE, run.platform_key, clock.now() - max_age
    )
    if gate is None:
        raise ActionRefused(
            f"no {GATE_RUN_TYPE} completed for {platform.key} in the last "
            f"{settings.release_gate_max_age_hours:g} h"
        )
    verdict = (gate.output or {}).get("verdict")
    if verdict != "pass":
        reasons = "; ".join((gate.output or {}).get("verdict_reasons", [])) or "no verdict"
        raise ActionRefused(
            f"the latest {GATE_RUN_TYPE} for {platform.key} did not pass "
            f"({verdict or 'none'}: {reasons})"
        )


def perform(
    session: Session, run: Run, settings: Settings, sessions: sessionmaker[Session] | None = None
) -> ActionResult:
    """Carry the approved plan out through its connector. Raises ActionFailed/Refused."""
    plan = run.plan or {}
    action = plan.get("action")
    if action == "email" and sessions is not None:
        from runhq.actions.campaigns import send_campaign

        return send_campaign(sessions, run.id, settings)
    if action == "pricing":
        return _change_price(run, settings)
    if action == "rls":
        return _apply_rls(session, run)
    if action != "deploy":
        raise ActionRefused(
            f"the {action} action connector is not available yet: "
            "the plan was approved but nothing was done"
        )
    assert run.platform_key is not None  # noqa: S101 - checked by check_preconditions
    platform = platforms.get_platform(session, run.workspace_id, run.platform_key)
    target = platform.deploy_target
    ref = plan.get("ref")  # what was approved is what is sent
    payload = {
        "run_id": str(run.id),
        "platform_key": platform.key,
        "ref": ref,
        "environment": platform.environment,
        "plan_hash": run.plan_hash,
    }
    with httpx.Client(timeout=30, headers={"User-Agent": "runhq-actions"}) as client:
        if target.get("type") == "webhook":
            secret = os.environ.get(str(target.get("secret_env", "")), "")
            if not target.get("url") or not secret:
                raise ActionRefused(
                    "deploy webhook needs 'url' and 'secret_env' naming a set environment variable"
                )
            return deploy_webhook(
                client,
                url=str(target["url"]),
                secret=secret,
                payload=payload,
                idempotency_key=f"runhq-{run.id}",
                now=clock.now(),
            )
        if target.get("type") == "github":
            token = os.environ.get(str(target.get("token_env", "")), "")
            if not (token and platform.repository and target.get("workflow")):
                raise ActionRefused(
                    "GitHub deploy needs the platform's repository, "
                    "'workflow' and 'token_env' naming a set variable"
                )
            return dispatch_workflow(
                client,
                api_url=str(target.get("api_url", "https://api.github.com")),
                token=token,
                repository=platform.repository,
                workflow=str(target["workflow"]),
                ref=str(ref or target.get("ref") or "main"),
                inputs={"runhq_run_id": str(run.id)},
            )
    raise ActionRefused(f"platform {platform.key} has no deploy target (type webhook|github)")


def _apply_rls(session: Session, run: Run) -> ActionResult:
    """RLS_POLICY_UPDATE: the plan's SQL on the platform's database (its DSN is read from
    the environment variable the platform's deploy_target names: database_url_env)."""
    plan = run.plan or {}
    if not plan.get("sql"):
        raise ActionRefused(
            "the plan has no SQL: edit the plan (PUT /runs/{id}/plan) to add "
            "the policy statements, then approve it"
        )
    if not run.platform_key:
        raise ActionRefused("an RLS update needs a platform_key")
    try:
        platform = platforms.get_platform(session, run.workspace_id, run.platform_key)
    except NotFound:
        raise ActionRefused(f"platform {run.platform_key!r} is not registered") from None
    dsn = os.environ.get(str(platform.deploy_target.get("database_url_env", "")), "")
    if not dsn:
        raise ActionRefused(
            "the platform's deploy_target needs 'database_url_env' naming "
            "a set environment variable with the PostgreSQL URL"
        )
    return apply_policies(
        dsn, table=str(plan.get("table") or run.params["table"]), sql=str(plan["sql"])
    )


def _change_price(run: Run, settings: Settings) -> ActionResult:
    """PRICING_CHANGE: a new Stripe Price made the product's default (existing
    subscriptions keep theirs). Idempotency keys derive from the run: a resend replays."""
    if settings.stripe_api_key is None:
        raise ActionRefused("Stripe is not configured (RUNHQ_STRIPE_API_KEY)")
    params = (run.plan or {}).get("parameters") or run.params
    with httpx.Client(timeout=30, headers={"User-Agent": "runhq-actions"}) as client:
        return change_price(
            client,
            api_key=settings.stripe_api_key.get_secret_value(),
            base_url=settings.stripe_base_url,
            product=str(params["product"]),
            new_amount_cents=int(params["new_amount_cents"]),
            currency=str(params["currency"]),
            interval=str(params.get("interval", "month")),
            idempotency_key=f"runhq-{run.id}",
        )


def gate_verdict(
    context: dict[str, Any],
    platform_key: str | None,
    *,
    exempt_types: Collection[str] = (),
    lang: str = "fr",
) -> tuple[str, list[str]]:
    """The release gate by rule, from the gathered facts (offline, or no model verdict).

    Fails on an open incident of the gated platform (of any platform, for a gate without
    one), on a run type failing again and again within 24 h on that platform or workspace-wide
    (``exempt_types``: the gates and actions themselves, so that a refused deployment does not
    block the gate that would let the next one through), on CI failing over 20 %, and on a CI
    status that could not be read although GitHub is configured (unknown is never a pass;
    GitHub not configured: CI is not checked, and the reasons say so). The reasons are in
    ``lang``, the report language.
    """
    tr = get_translator(lang)
    facts = context.get("facts", {})
    reasons: list[str] = []
    notes: list[str] = []

    def concerns(key: str | None) -> bool:
        return platform_key is None or key is None or key == platform_key

    for row in facts.get("platforms", {}).get("data", {}).get("platforms", []):
        if row.get("open_incident") and (
            platform_key is None or row.get("platform_key") == platform_key
        ):
            reasons.append(
                tr.t(
                    "report.gate.open_incident",
                    platform=row["platform_key"],
                    reason=row["open_incident"]["reason"],
                )
            )
    for row in facts.get("failures", {}).get("data", {}).get("recurring_24h", []):
        if row.get("run_type") not in exempt_types and concerns(row.get("platform_key")):
            key = "report.gate.recurring_on" if row.get("platform_key") else "report.gate.recurring"
            reasons.append(
                tr.t(
                    key,
                    run_type=row["run_type"],
                    failures=row["failures"],
                    platform=row.get("platform_key"),
                )
            )
    github = facts.get("github") or {}
    rate = github.get("data", {}).get("workflow_runs", {}).get("failure_rate")
    if github.get("status") == "ok":
        if isinstance(rate, int | float) and rate > 0.2:
            reasons.append(tr.t("report.gate.ci_failing", rate=tr.percent(rate, 0)))
        elif not isinstance(rate, int | float):
            notes.append(tr.t("report.gate.ci_no_runs"))
    elif not github or github.get("data", {}).get("configured") is False:
        notes.append(tr.t("report.gate.ci_not_configured"))
    else:  # configured, but it could not be read: unknown, and unknown is never a pass
        why = github.get("reason") or tr.t("report.gate.github_unavailable")
        reasons.append(tr.t("report.gate.ci_unknown", reason=why))
    if reasons:
        return "fail", reasons
    return "pass", [tr.t("report.gate.passed"), *notes]


__all__ = [
    "ActionFailed",
    "ActionRefused",
    "build_plan",
    "check_preconditions",
    "gate_verdict",
    "perform",
]
