"""Approvals (/approvals): what each pending run will do (plans of action runs included),
the owner's decision with a required reason, bound to the plan's hash; refusals for other
roles and forged forms; the empty state; a bounded number of queries."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq.auth.models import Role
from runhq.auth.schemas import system_actor
from runhq.platforms import service as platforms
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements
from tests.dashboard.conftest import csrf_of, log_in

NBSP = "\u00a0"
HOOK_URL = "https://hooks.example.com/t0ps3cret/deploy"


def _page(client: TestClient, team: Team, role: Role = Role.owner, url: str = "/approvals") -> str:
    log_in(client, team.emails[role])
    r = client.get(url)
    assert r.status_code == 200, r.text
    return r.text


def _gated(session: Session, runtime: Runtime, team: Team, platform: str | None = None) -> Run:
    """A gated run that waits for an owner before anything runs (no plan)."""
    run, _ = runs.create_run(
        session,
        team.operator,
        runtime.registry,
        run_type="RELEASE_GATE_CHECK",
        platform_key=platform,
        params={"ref": "v2.0.0"} if platform is None else {},
    )
    session.commit()
    assert run.status == RunStatus.pending_approval
    return run


def _planned(
    session: Session,
    runtime: Runtime,
    team: Team,
    run_type: str,
    params: dict[str, Any],
    platform: str | None = None,
) -> Run:
    """An action run whose plan phase ran (offline provider): it waits with its plan."""
    run, _ = runs.create_run(
        session,
        team.operator,
        runtime.registry,
        run_type=run_type,
        platform_key=platform,
        params=params,
    )
    session.commit()
    assert runtime.engine.execute(run.id) == RunStatus.pending_approval
    session.refresh(run)
    assert run.phase == "review"
    assert run.plan_hash
    return run


def _deploy(session: Session, runtime: Runtime, team: Team) -> Run:
    platforms.create_platform(
        session,
        team.admin,
        key="app",
        name="App",
        deploy_target={"type": "webhook", "url": HOOK_URL, "secret_env": "NOT_SET"},
    )
    session.commit()
    return _planned(session, runtime, team, "DEPLOY_TO_PRODUCTION", {"ref": "v1.4.0"}, "app")


def _article(html: str, run: Run) -> str:
    match = re.search(rf'<article[^>]*data-run-id="{run.id}".*?</article>', html, re.S)
    assert match, f"no card for run {run.id}"
    return match.group(0)


def _state(session: Session, run: Run) -> tuple[str, str, list[tuple[str, str | None]]]:
    session.expire_all()
    fresh = session.get(Run, run.id)
    assert fresh is not None
    decisions = [(a.decision, a.reason) for a in runs.list_approvals(session, fresh)]
    return fresh.status, fresh.phase, decisions


def _post(client: TestClient, path: str, form: dict[str, str], *, csrf: bool = True) -> Any:
    data = dict(form)
    if csrf:
        data["csrf_token"] = csrf_of(client.get("/approvals").text)
    return client.post(path, data=data, follow_redirects=False)


# -- reading ----------------------------------------------------------------------------------


def test_nothing_waiting_says_so(client: TestClient, team: Team) -> None:
    html = _page(client, team)
    assert 'data-state="empty"' in html
    assert "Aucune approbation en attente" in html
    assert '<form class="decision"' not in html
    assert 'data-badge="pending_approvals"' not in html
    assert 'href="/approvals" aria-current="page"' in html


def test_a_gated_run_shows_what_it_will_do(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _gated(session, runtime, team)
    html = _page(client, team)
    card = _article(html, run)
    assert "Contrôle de passage en release" in card
    assert "RELEASE_GATE_CHECK" in card
    assert "Risque élevé" in card
    assert "(CTO)" in card
    assert team.emails[Role.operator] in card
    assert "via l&#39;API" in card
    assert "v2.0.0" in card
    assert "<code>ref</code>" in card
    assert f"0,12{NBSP}€" in card  # the registry's estimate
    assert "Rien n&#39;a encore été envoyé à un modèle" in card
    # The owner's form: a labelled, required reason; approve and reject.
    assert f'<label for="reason-{run.id}">' in card
    assert re.search(rf'<textarea id="reason-{run.id}" name="reason"[^>]*required', card)
    assert f'action="/approvals/{run.id}/approve"' in card
    assert f'formaction="/approvals/{run.id}/reject"' in card
    assert 'name="plan_hash"' not in card  # no plan: nothing to bind
    assert "1 run attend une décision." in html
    assert 'data-badge="pending_approvals" aria-hidden="true">1<' in html


def test_a_deploy_shows_its_plan_and_hash_without_the_hook_url(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _deploy(session, runtime, team)
    card = _article(_page(client, team), run)
    assert "Déploiement en production" in card
    assert "<code>v1.4.0</code>" in card
    assert "Webhook signé (HMAC-SHA256) vers hooks.example.com" in card
    assert "t0ps3cret" not in card  # a hook URL's path is a credential
    assert run.plan_hash is not None
    assert f"<code data-plan-hash>{run.plan_hash}</code>" in card
    assert f'<input type="hidden" name="plan_hash" value="{run.plan_hash}">' in card
    assert "expire après 24 h" in card
    assert "moins de 24 h" in card  # the release gate it still needs


def test_the_other_actions_show_their_plans(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    pricing = _planned(
        session,
        runtime,
        team,
        "PRICING_CHANGE",
        {"product": "prod_pro", "new_amount_cents": 4900, "currency": "eur"},
    )
    rls = _planned(
        session,
        runtime,
        team,
        "RLS_POLICY_UPDATE",
        {"table": "public.orders", "sql": "ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;"},
        "app",
    )
    body = "Bonjour à toutes et à tous. " * 40
    email = _planned(
        session, runtime, team, "MASS_EMAIL_CAMPAIGN", {"subject": "Nouveautés", "body": body}
    )
    html = _page(client, team)
    card = _article(html, pricing)
    assert "Changement de tarif" in card
    assert f"49,00{NBSP}€ par mois" in card
    assert "prod_pro" in card
    card = _article(html, rls)
    assert "<code>public.orders</code>" in card
    assert "ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;" in card
    card = _article(html, email)
    assert "Campagne d&#39;e-mails" in card
    assert "Nouveautés" in card
    assert "0 contact<" in card  # nobody consented yet: said, not hidden
    # A long parameter is folded; the plan shows the message in full.
    assert '<details class="approval__long"><summary>Bonjour à toutes' in card
    assert card.count(body.strip()) == 2


def test_a_run_the_scheduler_started_says_so(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run, _ = runs.create_run(
        session,
        system_actor(team.workspace_id, "scheduler"),
        runtime.registry,
        run_type="RELEASE_GATE_CHECK",
    )
    session.commit()
    card = _article(_page(client, team), run)
    assert "runhq (automatique)" in card
    assert "via la planification" in card


def test_viewers_see_the_runs_but_no_decision_form(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _deploy(session, runtime, team)
    html = _page(client, team, Role.viewer)
    card = _article(html, run)
    assert "Déploiement en production" in card
    assert "<form" not in card
    assert "Approuver" not in card
    assert "Un propriétaire doit décider de ce run." in card
    assert "Seul un propriétaire peut approuver" in html
    admin = _article(_page(client, team, Role.admin), run)
    assert "<form" not in admin


def test_english(client: TestClient, session: Session, runtime: Runtime, team: Team) -> None:
    run = _deploy(session, runtime, team)
    log_in(client, team.emails[Role.owner])
    client.cookies.set("runhq_lang", "en")
    html = client.get("/approvals").text
    card = _article(html, run)
    assert "Production deployment" in card
    assert "Critical risk" in card
    assert "Reason for your decision" in card
    assert ">Approve<" in card


# -- deciding ---------------------------------------------------------------------------------


def test_the_owner_approves_the_plan_they_saw(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _deploy(session, runtime, team)
    log_in(client, team.emails[Role.owner])
    assert run.plan_hash is not None
    r = _post(
        client,
        f"/approvals/{run.id}/approve",
        {"reason": "  release 1.4  ", "plan_hash": run.plan_hash},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/approvals?done=approved&type=DEPLOY_TO_PRODUCTION"
    assert _state(session, run) == ("queued", "act", [("approved", "release 1.4")])
    html = client.get(r.headers["location"]).text
    assert "«\u00a0Déploiement en production\u00a0» approuvé" in html
    assert 'role="status"' in html
    assert 'data-badge="pending_approvals"' not in html  # the badge counted again
    assert "Aucune approbation en attente" in html


def test_the_owner_rejects_with_a_reason(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _gated(session, runtime, team)
    log_in(client, team.emails[Role.owner])
    r = _post(client, f"/approvals/{run.id}/reject", {"reason": "not this week"})
    assert r.status_code == 303, r.text
    assert _state(session, run) == ("rejected", "single", [("rejected", "not this week")])
    assert "rejeté" in client.get(r.headers["location"]).text


@pytest.mark.parametrize("decision", ["approve", "reject"])
@pytest.mark.parametrize("reason", [None, "", "   \n "])
def test_a_reason_is_required(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    decision: str,
    reason: str | None,
) -> None:
    run = _gated(session, runtime, team)
    log_in(client, team.emails[Role.owner])
    form = {} if reason is None else {"reason": reason}
    r = _post(client, f"/approvals/{run.id}/{decision}", form)
    assert r.status_code == 422
    card = _article(r.text, run)
    assert "Indiquez la raison de votre décision" in card
    assert 'aria-invalid="true"' in card
    assert f'id="reason-error-{run.id}"' in card
    assert f'aria-describedby="reason-help-{run.id} reason-error-{run.id}"' in card
    assert '<p class="alert alert--error" role="alert">' in r.text
    assert _state(session, run) == ("pending_approval", "single", [])


def test_a_stale_plan_hash_is_refused(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _deploy(session, runtime, team)
    seen = run.plan_hash
    assert seen is not None
    assert run.plan is not None
    # An admin edits the plan after the owner opened the page.
    runs.update_plan(session, team.admin, run.id, {**run.plan, "ref": "v6.6.6"})
    session.commit()
    log_in(client, team.emails[Role.owner])
    r = _post(client, f"/approvals/{run.id}/approve", {"reason": "ok", "plan_hash": seen})
    assert r.status_code == 409
    assert "Action impossible dans cet état" in r.text
    assert "Le plan a changé depuis que vous l&#39;avez consulté" in r.text
    status, phase, decisions = _state(session, run)
    assert (status, phase, decisions) == ("pending_approval", "review", [])
    # A forged form without the hash does not approve it blindly either.
    r = _post(client, f"/approvals/{run.id}/approve", {"reason": "ok"})
    assert r.status_code == 409
    assert _state(session, run)[2] == []
    # The page shows the new plan and its hash; approving that one works.
    card = _article(client.get("/approvals").text, run)
    session.refresh(run)
    assert "<code>v6.6.6</code>" in card
    assert run.plan_hash is not None
    assert run.plan_hash != seen
    assert f'name="plan_hash" value="{run.plan_hash}"' in card
    r = _post(client, f"/approvals/{run.id}/approve", {"reason": "ok", "plan_hash": run.plan_hash})
    assert r.status_code == 303


@pytest.mark.parametrize("role", [Role.admin, Role.operator, Role.viewer])
@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_only_owners_decide(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    role: Role,
    decision: str,
) -> None:
    run = _deploy(session, runtime, team)
    assert run.plan_hash is not None
    log_in(client, team.emails[role])
    r = _post(
        client, f"/approvals/{run.id}/{decision}", {"reason": "me", "plan_hash": run.plan_hash}
    )
    assert r.status_code == 403
    assert "Action non autorisée pour votre rôle" in r.text
    assert _state(session, run) == ("pending_approval", "review", [])


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_post_without_the_csrf_token_is_refused(
    client: TestClient, session: Session, runtime: Runtime, team: Team, decision: str
) -> None:
    run = _gated(session, runtime, team)
    log_in(client, team.emails[Role.owner])
    r = _post(client, f"/approvals/{run.id}/{decision}", {"reason": "x"}, csrf=False)
    assert r.status_code == 403
    assert "Formulaire expiré" in r.text
    r = client.post(
        f"/approvals/{run.id}/{decision}",
        data={"reason": "x", "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert _state(session, run) == ("pending_approval", "single", [])


def test_logged_out_posts_go_to_the_login(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _gated(session, runtime, team)
    assert client.get("/approvals", follow_redirects=False).headers["location"].startswith("/login")
    r = client.post(f"/approvals/{run.id}/approve", data={"reason": "x"}, follow_redirects=False)
    assert r.status_code in (303, 403)
    assert _state(session, run) == ("pending_approval", "single", [])


def test_a_decided_or_unknown_run_is_refused(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _gated(session, runtime, team)
    runs.reject_run(session, team.owner, run.id, reason="no")
    session.commit()
    log_in(client, team.emails[Role.owner])
    r = _post(client, f"/approvals/{run.id}/approve", {"reason": "changed my mind"})
    assert r.status_code == 409
    assert _state(session, run)[0] == "rejected"
    r = _post(client, f"/approvals/{uuid.uuid4()}/approve", {"reason": "x"})
    assert r.status_code == 404


# -- pages and queries ---------------------------------------------------------------------------


def test_pages_of_twenty(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    created = [_gated(session, runtime, team, f"p{i}") for i in range(23)]
    html = _page(client, team)
    assert html.count('<article class="card approval"') == 20
    assert "23 runs attendent une décision." in html
    match = re.search(r'href="(/approvals\?cursor=[^"]+)"', html)
    assert match
    rest = client.get(match.group(1).replace("&amp;", "&")).text
    assert rest.count('<article class="card approval"') == 3
    assert f'data-run-id="{created[0].id}"' in rest  # newest first: the oldest come last
    assert 'href="/approvals">' in rest


def test_a_bounded_number_of_queries(
    client: TestClient, session: Session, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    """Not N+1: the same statements for 1 pending run or 20, whoever asked for them."""
    log_in(client, team.emails[Role.owner])
    requesters = [team.operator, team.admin, team.owner]

    def grow(start: int, n: int) -> None:
        for i in range(start, start + n):
            runs.create_run(
                session,
                requesters[i % 3],
                runtime.registry,
                run_type="RELEASE_GATE_CHECK",
                platform_key=f"p{i}",
            )
        session.commit()

    def count() -> list[str]:
        with counted_statements(db_engine) as statements:
            r = client.get("/approvals")
            assert r.status_code == 200
        return statements

    _deploy(session, runtime, team)
    grow(0, 1)
    few = count()
    grow(1, 18)
    many = count()
    assert len(few) == len(many), "\n".join(many)
    queries = [s for s in many if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(queries) <= 8, "\n".join(queries)
