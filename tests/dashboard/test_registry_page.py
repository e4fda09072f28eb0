"""The registry (/registry): the 29 run types in both languages, "run now" by role with
CSRF, the confirmation of gated types, parameters, refusals shown (never a 500), and a
bounded number of queries."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq.auth.models import Role
from runhq.costs import service as costs
from runhq.costs.models import GLOBAL_SCOPE
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements
from tests.dashboard.conftest import assert_no_blank_figures, csrf_of, log_in

HTMX = {"HX-Request": "true"}
_TYPE_RE = re.compile(r'<tr id="type-([A-Z0-9_]+)" data-run-type="\1">(.*?)</tr>', re.S)


def _types(html: str) -> dict[str, str]:
    return dict(_TYPE_RE.findall(html))


def _registry(client: TestClient, url: str = "/registry") -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert_no_blank_figures(r.text)
    return r.text


def _runs(session: Session, team: Team) -> list[Run]:
    session.expire_all()
    return runs.list_runs(session, team.owner, limit=100)[0]


def _post(
    client: TestClient, key: str, token: str, htmx: bool = False, **params: str
) -> httpx.Response:
    data = {"csrf_token": token, **{f"param.{k}": v for k, v in params.items()}}
    headers = {**HTMX, "X-CSRF-Token": token} if htmx else {}
    return client.post(f"/registry/{key}/run", data=data, headers=headers, follow_redirects=False)


def test_the_29_run_types_in_both_languages(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    log_in(client, team.emails[Role.operator])
    html = _registry(client)
    rows = _types(html)
    assert list(rows) == list(runtime.registry.run_types)
    assert len(rows) == 29
    assert "29 types de run" in html
    brief = rows["DAILY_EXECUTIVE_BRIEF"]
    assert "Brief exécutif quotidien" in brief
    assert "CEO" in brief
    assert "gemini-2.5-pro" in brief
    assert "0,10\u00a0€" in brief
    assert "Faible" in brief
    assert ">Non<" in brief
    deploy = rows["DEPLOY_TO_PRODUCTION"]
    assert "Critique" in deploy
    assert "Requise" in deploy
    for key, spec in runtime.registry.run_types.items():
        assert f'class="risk risk--{spec.risk.value}"' in rows[key]
    client.cookies.set("runhq_lang", "en")
    rows = _types(_registry(client))
    assert "Daily executive brief" in rows["DAILY_EXECUTIVE_BRIEF"]
    assert "€0.10" in rows["DAILY_EXECUTIVE_BRIEF"]
    assert "Critical" in rows["DEPLOY_TO_PRODUCTION"]


def test_a_run_type_page_lists_its_steps_in_the_visitor_language(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    log_in(client, team.emails[Role.viewer])
    spec = runtime.registry.get("RELEASE_GATE_CHECK")
    page = _registry(client, "/registry/RELEASE_GATE_CHECK")
    for french, english in zip(spec.steps_fr, spec.steps, strict=True):
        assert f"<li>{escape(french)}</li>" in page
        assert f"<li>{escape(english)}</li>" not in page
    client.cookies.set("runhq_lang", "en")
    page = _registry(client, "/registry/RELEASE_GATE_CHECK")
    for step in spec.steps:
        assert f"<li>{escape(step)}</li>" in page


def test_each_kind_of_run_type_gets_its_control(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    log_in(client, team.emails[Role.operator])
    rows = _types(_registry(client))
    for key, spec in runtime.registry.run_types.items():
        row = rows[key]
        required = any(p.required for p in spec.params.values())
        if required:
            assert 'data-action="configure"' in row, key
            assert "<form" not in row, key  # started from its page only
        elif spec.requires_approval:
            assert f'data-confirm="confirm-{key}"' in row, key
            assert f'href="/registry/{key}"' in row, key  # the no-JS confirmation step
            assert f'<dialog id="confirm-{key}"' in row, key
            assert f'action="/registry/{key}/run"' in row, key
        else:
            assert f'action="/registry/{key}/run"' in row, key
            assert "<dialog" not in row, key
    # No inline script or style anywhere (CSP); the dialog's script is a static file.
    html = _registry(client)
    assert "<script>" not in html
    assert " style=" not in html
    assert "/static/pages/registry.js?v=" in html


def test_a_viewer_sees_no_run_button_and_is_refused_anyway(
    client: TestClient, session: Session, team: Team
) -> None:
    log_in(client, team.emails[Role.viewer])
    html = _registry(client)
    assert 'data-action="run"' not in html
    assert 'data-action="configure"' not in html
    assert "<dialog" not in html
    assert 'data-notice="viewer"' in html
    assert 'data-action="run"' not in _registry(client, "/registry/SEO_AUDIT")
    token = csrf_of(html)
    r = _post(client, "PLATFORM_STATUS_REVIEW", token)
    assert r.status_code == 403
    assert "Action non autorisée pour votre rôle" in r.text
    r = _post(client, "PLATFORM_STATUS_REVIEW", token, htmx=True)
    assert r.status_code == 403
    assert "runhq:toast" in r.headers["HX-Trigger"]
    # Even with bad parameters, the role is what answers.
    r = _post(client, "PRICING_CHANGE", token, new_amount_cents="abc")
    assert r.status_code == 403
    assert _runs(session, team) == []


def test_a_post_without_the_csrf_token_is_refused(
    client: TestClient, session: Session, team: Team
) -> None:
    log_in(client, team.emails[Role.owner])
    for data in ({}, {"csrf_token": "forged"}):
        r = client.post("/registry/SEO_AUDIT/run", data=data, follow_redirects=False)
        assert r.status_code == 403
        assert "Formulaire expiré" in r.text
    assert _runs(session, team) == []


def test_run_now_leads_to_the_run_page(client: TestClient, session: Session, team: Team) -> None:
    log_in(client, team.emails[Role.operator])
    token = csrf_of(_registry(client))
    r = _post(client, "PLATFORM_STATUS_REVIEW", token)
    assert r.status_code == 303
    location = r.headers["location"]
    [run] = _runs(session, team)
    assert location == f"/runs/{run.id}"
    assert run.status == RunStatus.queued
    assert run.requested_via == "dashboard"
    assert run.requested_by == team.operator.user_id
    page = client.get(location).text
    assert 'id="run-status" data-status="queued"' in page
    assert f'hx-get="/runs/{run.id}/live"' in page  # it updates itself until finished


def test_run_now_with_htmx_redirects(client: TestClient, session: Session, team: Team) -> None:
    log_in(client, team.emails[Role.operator])
    r = _post(client, "SEO_AUDIT", csrf_of(_registry(client)), htmx=True)
    assert r.status_code == 204
    [run] = _runs(session, team)
    assert r.headers["HX-Redirect"] == f"/runs/{run.id}"


def test_a_gated_run_waits_for_approval(client: TestClient, session: Session, team: Team) -> None:
    log_in(client, team.emails[Role.operator])
    page = _registry(client, "/registry/RELEASE_GATE_CHECK")
    assert "Risque\u00a0: Élevé. Ce run attendra l&#39;approbation" in page
    assert "Lancer (approbation requise)" in page
    r = _post(client, "RELEASE_GATE_CHECK", csrf_of(page))
    assert r.status_code == 303
    [run] = _runs(session, team)
    assert run.status == RunStatus.pending_approval


def test_a_duplicate_run_is_refused_with_a_link_to_the_active_one(
    client: TestClient, session: Session, team: Team
) -> None:
    log_in(client, team.emails[Role.operator])
    token = csrf_of(_registry(client))
    assert _post(client, "SEO_AUDIT", token).status_code == 303
    [active] = _runs(session, team)
    r = _post(client, "SEO_AUDIT", token)
    assert r.status_code == 409
    assert "Voir le run actif" in r.text
    assert f'href="/runs/{active.id}"' in r.text
    assert "est déjà dans" in r.text  # the service's refusal, in French
    r = _post(client, "SEO_AUDIT", token, htmx=True)
    assert r.status_code == 409
    toast = json.loads(r.headers["HX-Trigger"])["runhq:toast"]
    assert toast["title"] == "Un run identique est déjà actif"
    assert len(_runs(session, team)) == 1


def test_over_budget_is_refused_with_its_message(
    client: TestClient, session: Session, team: Team
) -> None:
    costs.set_budget(session, team.workspace_id, scope=GLOBAL_SCOPE, monthly_limit_eur=0.01)
    session.commit()
    log_in(client, team.emails[Role.operator])
    token = csrf_of(_registry(client))
    r = _post(client, "SEO_AUDIT", token)
    assert r.status_code == 402
    assert "Augmentez le budget ou attendez le mois prochain." in r.text
    r = _post(client, "SEO_AUDIT", token, htmx=True)
    assert r.status_code == 402
    toast = json.loads(r.headers["HX-Trigger"])["runhq:toast"]
    assert toast["title"] == "Budget mensuel dépassé"
    assert _runs(session, team) == []


def test_required_parameters_have_a_form(client: TestClient, session: Session, team: Team) -> None:
    log_in(client, team.emails[Role.operator])
    page = _registry(client, "/registry/PRICING_CHANGE")
    for name in ("product", "new_amount_cents", "currency"):
        assert f'<label for="param-{name}">' in page
    assert '<select id="param-currency" name="param.currency" required' in page
    assert 'type="number"' in page
    token = csrf_of(page)
    # Missing: a 422 with the form again, what was typed kept, the field marked.
    r = _post(client, "PRICING_CHANGE", token, product="Pro plan")
    assert r.status_code == 422
    assert "Le paramètre «\u00a0currency\u00a0» est obligatoire." in r.text  # in French
    assert 'value="Pro plan"' in r.text
    assert 'aria-invalid="true"' in r.text
    # Not a number: named by the service, never a 500.
    r = _post(
        client, "PRICING_CHANGE", token, product="Pro", new_amount_cents="abc", currency="eur"
    )
    assert r.status_code == 422
    assert "«\u00a0new_amount_cents\u00a0» doit être un nombre entier." in r.text
    client.cookies.set("runhq_lang", "en")
    r = _post(client, "PRICING_CHANGE", token, product="Pro", new_amount_cents="-5", currency="eur")
    assert r.status_code == 422
    assert "“new_amount_cents” must be at least" in r.text
    client.cookies.delete("runhq_lang")
    r = _post(client, "PRICING_CHANGE", token, htmx=True, product="Pro")
    assert r.status_code == 422
    assert "runhq:toast" in r.headers["HX-Trigger"]
    assert _runs(session, team) == []
    r = _post(
        client, "PRICING_CHANGE", token, product="Pro plan", new_amount_cents="2900", currency="eur"
    )
    assert r.status_code == 303
    [run] = _runs(session, team)
    assert run.params == {"product": "Pro plan", "new_amount_cents": 2900, "currency": "eur"}


def test_optional_parameters_are_converted(
    client: TestClient, session: Session, team: Team
) -> None:
    log_in(client, team.emails[Role.operator])
    token = csrf_of(_registry(client, "/registry/ADS_PERFORMANCE_REVIEW"))
    r = _post(
        client,
        "ADS_PERFORMANCE_REVIEW",
        token,
        channels="google\nmeta, x\n",
        period_days="14",
        monthly_budget_eur="1500,5",
    )
    assert r.status_code == 303, r.text
    [run] = _runs(session, team)
    assert run.params == {
        "channels": ["google", "meta, x"],
        "period_days": 14,
        "monthly_budget_eur": 1500.5,
    }
    r = _post(client, "CEO_STANDUP_MEETING", token, agents="CEO, CTO")
    assert r.status_code == 303
    standup = next(run for run in _runs(session, team) if run.run_type == "CEO_STANDUP_MEETING")
    assert standup.params == {"agents": ["CEO", "CTO"]}
    # Unknown form fields are not parameters; empty ones leave the default.
    r = _post(client, "FINANCIAL_REPORT", token, period="", bogus="1")
    assert r.status_code == 303
    report = next(run for run in _runs(session, team) if run.run_type == "FINANCIAL_REPORT")
    assert report.params == {}


@pytest.mark.parametrize("key", ["NOPE", "daily_executive_brief", "%3Cscript%3E", "A" * 300])
def test_unknown_run_types_are_404(client: TestClient, team: Team, key: str) -> None:
    log_in(client, team.emails[Role.operator])
    assert client.get(f"/registry/{key}").status_code == 404
    token = csrf_of(_registry(client))
    r = client.post(f"/registry/{key}/run", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404


def test_every_run_type_page_renders(client: TestClient, runtime: Runtime, team: Team) -> None:
    log_in(client, team.emails[Role.owner])
    for key, spec in runtime.registry.run_types.items():
        html = _registry(client, f"/registry/{key}")
        assert spec.label.fr in html.replace("&#39;", "'"), key
        for name in spec.params:
            assert f'name="param.{name}"' in html, (key, name)


def test_the_registry_issues_a_bounded_number_of_queries(
    client: TestClient, team: Team, db_engine: Engine
) -> None:
    log_in(client, team.emails[Role.owner])
    with counted_statements(db_engine) as statements:
        assert client.get("/registry").status_code == 200
    queries = [s for s in statements if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(queries) <= 6, "\n".join(queries)


def test_not_logged_in_goes_to_the_login(client: TestClient) -> None:
    r = client.get("/registry", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/registry"
    assert client.get(f"/registry/{uuid.uuid4()}", follow_redirects=False).status_code == 303


def test_keys_the_templates_compose_exist() -> None:
    from runhq.i18n import LANGS, get_catalog
    from runhq.registry.schemas import Risk

    needed = [f"registry.risk.{risk.value}" for risk in Risk]
    for lang in LANGS:
        catalog = get_catalog(lang)
        assert [key for key in needed if key not in catalog] == [], lang
