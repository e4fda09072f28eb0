"""Monitoring (/runs) and the run page (/runs/{id}): filters, pagination, the failures banner
and empty state, expandable rows, retry and cancel by role, the live fragments, errors that
are pages (never a 500), and a bounded number of queries."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth.models import Role
from runhq.i18n import Translator
from runhq.runs import service as runs
from runhq.runs.models import Run, RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements, make_team
from tests.dashboard.conftest import (
    add_platform,
    add_run,
    assert_no_blank_figures,
    csrf_of,
    log_in,
    run_daily_brief,
)

HTMX = {"HX-Request": "true"}
_ROW_RE = re.compile(r'<li class="run-row" id="run-([0-9a-f-]{36})"')


def _row_ids(html: str) -> list[str]:
    return _ROW_RE.findall(html)


def _page(client: TestClient, url: str = "/runs", status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, r.text
    assert_no_blank_figures(r.text)
    return r.text


def _queued(session: Session, runtime: Runtime, team: Team, run_type: str = "CODE_REVIEW") -> Run:
    run, _ = runs.create_run(session, team.operator, runtime.registry, run_type=run_type)
    session.commit()
    return run


# -- the list -----------------------------------------------------------------------------------


def test_runs_newest_first_with_expandable_rows(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    older = add_run(session, team, runtime.registry, "SEO_AUDIT", ago=timedelta(hours=5))
    failed = add_run(
        session,
        team,
        runtime.registry,
        "CODE_REVIEW",
        status=RunStatus.failed,
        ago=timedelta(hours=2),
        platform_key="app",
    )
    summary = "Le trafic organique progresse. " * 20  # far more than a preview's 150 chars
    newest = runs.import_run_record(
        session,
        team.workspace_id,
        runtime.registry,
        run_type="FINANCIAL_REPORT",
        status=RunStatus.completed,
        created_at=clock.now() - timedelta(minutes=10),
        requested_via="test",
        executive_summary=summary.strip(),
        actual_cost=None,
        duration_ms=None,
    )
    session.commit()
    log_in(client, team.emails[Role.viewer])
    html = _page(client)
    assert _row_ids(html) == [str(newest.id), str(failed.id), str(older.id)]
    assert "<details" in html
    assert "<summary" in html
    assert summary.strip().replace("'", "&#39;") in html  # the full summary, not a preview
    assert "Erreur sur la plateforme app" in html
    assert "model provider failed: HTTP 503" in html
    assert "Rapport financier" in html
    assert "Revue de code" in html
    assert 'data-status="failed">Échoué<' in html
    # An unknown cost or duration is a dash, never "None" or 0.
    row = html.split(f'id="run-{newest.id}-meta"')[1].split("</span>\n</span>")[0]
    assert "—" in row
    assert 'aria-current="page"' in html  # the sidebar knows where we are
    assert 'href="/runs" aria-current="page"' in html


def test_filters(client: TestClient, session: Session, runtime: Runtime, team: Team) -> None:
    review = add_run(session, team, runtime.registry, "CODE_REVIEW", platform_key="app")
    seo = add_run(session, team, runtime.registry, "SEO_AUDIT", ago=timedelta(days=3))
    failed = add_run(
        session,
        team,
        runtime.registry,
        "FINANCIAL_REPORT",
        status=RunStatus.failed,
        ago=timedelta(days=10),
        platform_key="api",
    )
    queued = _queued(session, runtime, team, "PLATFORM_STATUS_REVIEW")
    log_in(client, team.emails[Role.viewer])
    cases = {
        "/runs?status=failed": [failed],
        "/runs?status=queued": [queued],
        "/runs?status=active": [queued],
        "/runs?run_type=SEO_AUDIT": [seo],
        "/runs?agent=CMO": [seo],  # SEO_AUDIT's agent
        "/runs?agent=CTO": [queued, review],
        "/runs?platform=app": [review],
        "/runs?period=24h": [queued, review],
        "/runs?period=7d": [queued, review, seo],
        "/runs?period=30d": [queued, review, seo, failed],
        "/runs?period=all&agent=CFO&status=failed": [failed],
        "/runs?agent=CTO&platform=api": [],
    }
    for url, expected in cases.items():
        html = _page(client, url)
        assert _row_ids(html) == [str(r.id) for r in expected], url
    # The form shows what is chosen, with labelled controls.
    html = _page(client, "/runs?status=failed&run_type=SEO_AUDIT&period=7d&platform=app")
    assert '<option value="failed" selected>' in html
    assert '<option value="SEO_AUDIT" selected>' in html
    assert '<option value="7d" selected>' in html
    assert 'value="app"' in html
    for control in ("filter-status", "filter-run-type", "filter-agent", "filter-platform"):
        assert f'<label for="{control}">' in html
    assert 'hx-get="/runs" hx-target="#runs-results"' in html
    assert "Aucun run ne correspond à ces filtres." in _page(client, "/runs?agent=CTO&platform=x")


def test_htmx_filtering_swaps_the_results_only(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = add_run(session, team, runtime.registry, "SEO_AUDIT")
    session.commit()
    log_in(client, team.emails[Role.viewer])
    r = client.get("/runs?run_type=SEO_AUDIT", headers={**HTMX, "HX-Target": "runs-results"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<section id="runs-results"')
    assert "<html" not in r.text
    assert _row_ids(r.text) == [str(run.id)]
    # A history restore (HTMX without a target) gets the whole page.
    r = client.get("/runs", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in r.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "Statut"),
        ("run_type=NOPE", "Type de run"),
        ("agent=XYZ", "Agent"),
        ("period=1y", "Période"),
        ("cursor=not-a-cursor", "Page"),
        ("platform=" + "p" * 300, "Plateforme"),
    ],
)
def test_unknown_filter_values_are_ignored_and_said(
    client: TestClient, session: Session, runtime: Runtime, team: Team, query: str, field: str
) -> None:
    run = add_run(session, team, runtime.registry, "SEO_AUDIT")
    session.commit()
    log_in(client, team.emails[Role.viewer])
    html = _page(client, f"/runs?{query}")
    assert _row_ids(html) == [str(run.id)]  # as if the filter was not there
    assert f"Filtre «\u00a0{field}\u00a0» ignoré" in html


def test_odd_queries_never_fail(client: TestClient, team: Team) -> None:
    log_in(client, team.emails[Role.viewer])
    for query in (
        "status=failed&status=queued",
        "status=%00",
        "cursor=" + "A" * 5000,
        "agent=<script>alert(1)</script>",
        "period=",
        "ids=nope",
    ):
        r = client.get(f"/runs?{query}")
        assert r.status_code == 200, query
        assert "<script>alert" not in r.text
    assert client.get("/runs/live?ids=nope&ids=" + "x" * 50).status_code == 200


def test_failures_banner_counts_the_last_24_hours(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    log_in(client, team.emails[Role.viewer])
    add_run(
        session, team, runtime.registry, "SEO_AUDIT", status=RunStatus.failed, ago=timedelta(days=2)
    )
    session.commit()
    assert 'data-banner="failures"' not in _page(client)
    for hours in (1, 5):
        add_run(
            session,
            team,
            runtime.registry,
            "CODE_REVIEW",
            status=RunStatus.failed,
            ago=timedelta(hours=hours),
        )
    session.commit()
    html = _page(client)
    banner = html.split('data-banner="failures"')[1].split("</div>")[0]
    assert "2 runs ont échoué ces dernières 24 h." in banner
    assert 'href="/runs?status=failed&amp;period=24h"' in banner
    assert len(_row_ids(_page(client, "/runs?status=failed&period=24h"))) == 2
    client.cookies.set("runhq_lang", "en")
    assert "2 runs failed in the last 24 h." in _page(client)


def test_failures_filter_with_no_failures_says_everything_works(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    add_run(session, team, runtime.registry, "SEO_AUDIT")
    session.commit()
    log_in(client, team.emails[Role.viewer])
    html = _page(client, "/runs?status=failed")
    assert _row_ids(html) == []
    empty = html.split('data-empty="failures"')[1].split("</div>")[0]
    assert "Aucun échec — tout fonctionne" in empty
    assert "<svg" in empty  # the check icon
    assert 'data-filter="failures" aria-current="true"' in html
    client.cookies.set("runhq_lang", "en")
    assert "No failures — everything works" in _page(client, "/runs?status=failed")


def test_an_empty_workspace_points_to_the_registry(client: TestClient, team: Team) -> None:
    log_in(client, team.emails[Role.viewer])
    html = _page(client)
    assert 'data-empty="none"' in html
    assert 'href="/registry"' in html
    assert 'data-banner="failures"' not in html
    assert 'hx-trigger="every' not in html  # nothing to watch


def test_pagination_keeps_the_filters(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    made = [
        add_run(session, team, runtime.registry, "SEO_AUDIT", ago=timedelta(minutes=i + 1))
        for i in range(30)
    ]
    add_run(session, team, runtime.registry, "CODE_REVIEW")  # filtered out
    session.commit()
    log_in(client, team.emails[Role.viewer])
    first = _page(client, "/runs?run_type=SEO_AUDIT&period=7d")
    assert _row_ids(first) == [str(r.id) for r in made[:25]]
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older, "an Older link"
    link = older.group(1).replace("&amp;", "&")
    assert "run_type=SEO_AUDIT" in link
    assert "period=7d" in link
    assert "cursor=" in link
    second = _page(client, link)
    assert _row_ids(second) == [str(r.id) for r in made[25:]]
    assert 'rel="next"' not in second
    assert "Revenir aux plus récents" in second
    assert "Plus anciens" in first


# -- retry, by role -----------------------------------------------------------------------------


def test_viewer_sees_no_retry_and_is_refused_anyway(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    failed = add_run(session, team, runtime.registry, "CODE_REVIEW", status=RunStatus.failed)
    session.commit()
    log_in(client, team.emails[Role.viewer])
    html = _page(client)
    assert 'data-action="retry"' not in html
    assert 'data-action="retry"' not in _page(client, f"/runs/{failed.id}")
    token = csrf_of(html)
    r = client.post(f"/runs/{failed.id}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403
    assert "Action non autorisée pour votre rôle" in r.text
    r = client.post(f"/runs/{failed.id}/retry", headers={**HTMX, "X-CSRF-Token": token})
    assert r.status_code == 403
    assert "permission_denied" not in r.headers["HX-Trigger"]
    assert "runhq:toast" in r.headers["HX-Trigger"]
    session.expire_all()
    assert runs.list_runs(session, team.owner, limit=10)[0] == [failed]


def test_posts_without_the_csrf_token_are_refused(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    failed = add_run(session, team, runtime.registry, "CODE_REVIEW", status=RunStatus.failed)
    session.commit()
    log_in(client, team.emails[Role.owner])
    for path in (f"/runs/{failed.id}/retry", f"/runs/{failed.id}/cancel"):
        r = client.post(path, data={}, follow_redirects=False)
        assert r.status_code == 403, path
        assert "Formulaire expiré" in r.text
        r = client.post(path, data={"csrf_token": "forged"}, follow_redirects=False)
        assert r.status_code == 403, path
    session.expire_all()
    assert len(runs.list_runs(session, team.owner, limit=10)[0]) == 1


def test_operator_retries_a_failed_run(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    failed = add_run(
        session, team, runtime.registry, "CODE_REVIEW", status=RunStatus.failed, platform_key="app"
    )
    session.commit()
    log_in(client, team.emails[Role.operator])
    html = _page(client)
    assert f'action="/runs/{failed.id}/retry"' in html
    r = client.post(
        f"/runs/{failed.id}/retry", data={"csrf_token": csrf_of(html)}, follow_redirects=False
    )
    assert r.status_code == 303
    new_id = r.headers["location"].removeprefix("/runs/")
    new = runs.get_run(session, team.owner, uuid.UUID(new_id))
    assert new.parent_run_id == failed.id
    assert new.attempt == 2
    assert new.platform_key == "app"
    assert new.status == RunStatus.queued
    assert new.requested_via == "dashboard"
    page = _page(client, r.headers["location"])
    assert f'href="/runs/{failed.id}"' in page  # "retry of"
    assert 'data-status="queued"' in page
    listing = _page(client)
    assert _row_ids(listing)[0] == new_id
    assert "Tentative 2" in listing


def test_a_refused_retry_is_a_toast_for_htmx_and_a_page_otherwise(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    done = add_run(session, team, runtime.registry, "CODE_REVIEW")
    session.commit()
    log_in(client, team.emails[Role.operator])
    token = csrf_of(_page(client))
    r = client.post(f"/runs/{done.id}/retry", headers={**HTMX, "X-CSRF-Token": token})
    assert r.status_code == 409
    toast = json.loads(r.headers["HX-Trigger"])["runhq:toast"]
    assert toast["title"] == "Action impossible dans cet état"
    # Why, in the visitor's language (the API keeps the service's words).
    assert "seuls les runs en échec ou annulés" in toast["message"]
    assert "Terminé" in toast["message"]
    r = client.post(f"/runs/{done.id}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 409
    assert "Action impossible dans cet état" in r.text


def test_htmx_retry_redirects_to_the_new_run(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    failed = add_run(session, team, runtime.registry, "SEO_AUDIT", status=RunStatus.failed)
    session.commit()
    log_in(client, team.emails[Role.operator])
    token = csrf_of(_page(client))
    r = client.post(f"/runs/{failed.id}/retry", headers={**HTMX, "X-CSRF-Token": token})
    assert r.status_code == 204
    assert re.fullmatch(r"/runs/[0-9a-f-]{36}", r.headers["HX-Redirect"])


# -- live updates -------------------------------------------------------------------------------


def test_active_runs_are_polled_until_they_finish(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    done = add_run(session, team, runtime.registry, "SEO_AUDIT")
    queued = _queued(session, runtime, team, "PLATFORM_STATUS_REVIEW")
    log_in(client, team.emails[Role.viewer])
    html = _page(client)
    poller = re.search(r'<div id="runs-poller"[^>]*>', html)
    assert poller
    assert 'hx-trigger="every 2s"' in poller.group(0)
    assert f"ids={queued.id}" in poller.group(0)
    assert str(done.id) not in poller.group(0)  # a finished run is not asked for again
    live = client.get(f"/runs/live?ids={queued.id}")
    assert live.status_code == 200
    assert f'id="run-{queued.id}-status" data-status="queued" hx-swap-oob="true"' in live.text
    assert 'hx-trigger="every 2s"' in live.text
    assert runtime.engine.execute(queued.id) == RunStatus.completed
    live = client.get(f"/runs/live?ids={queued.id}")
    assert 'data-status="completed" hx-swap-oob="true">Terminé<' in live.text
    assert f'id="run-{queued.id}-body" hx-swap-oob="true"' in live.text
    assert "hx-trigger" not in live.text  # all finished: the polling stops


def test_runs_waiting_for_approval_are_polled_slowly(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    _queued(session, runtime, team, "RELEASE_GATE_CHECK")
    log_in(client, team.emails[Role.viewer])
    assert 'hx-trigger="every 15s"' in _page(client)


def test_live_rows_of_another_workspace_are_left_out(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    other = make_team(session)
    theirs, _ = runs.create_run(session, other.operator, runtime.registry, run_type="SEO_AUDIT")
    session.commit()
    log_in(client, team.emails[Role.owner])
    live = client.get(f"/runs/live?ids={theirs.id}")
    assert live.status_code == 200
    assert str(theirs.id) not in live.text
    assert str(theirs.id) not in _page(client)


# -- the run page -------------------------------------------------------------------------------


def test_a_completed_run_page(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = run_daily_brief(runtime, session, team)
    assert run.context is not None
    assert run.output is not None
    log_in(client, team.emails[Role.viewer])
    html = _page(client, f"/runs/{run.id}")
    assert '<h1><span aria-hidden="true">👔</span> Brief exécutif quotidien</h1>' in html
    assert 'id="run-status" data-status="completed">Terminé<' in html
    assert "CEO — Directeur général" in html
    spec = runtime.registry.get("DAILY_EXECUTIVE_BRIEF")
    for step in spec.steps_fr:  # the steps in the visitor's language
        assert f"<li>{escape(step)}</li>" in html
    for event in ("run.created", "run.started", "run.completed"):
        assert f'data-log="{event}"' in html
    assert html.index('data-log="run.created"') < html.index('data-log="run.completed"')
    assert 'data-cost="estimated">0,10\u00a0€<' in html
    assert 'data-cost="actual">0,00\u00a0€<' in html
    assert "offline" in html  # the model used
    assert "gemini-2.5-pro" in html  # the model planned
    french = Translator("fr")
    for key in run.context["facts"]:
        assert f'data-fact="{key}"' in html
        assert str(escape(french.t(f"run.facts.source.{key}"))) in html
    # Stored in the report language (French by default), titled in the visitor's.
    client.cookies.set("runhq_lang", "en")
    english_page = client.get(f"/runs/{run.id}").text
    for key in run.context["facts"]:
        assert str(escape(Translator("en").t(f"run.facts.source.{key}"))) in english_page
    assert '<pre class="json">' in html
    for section in run.output["sections"]:
        assert f"<summary>{escape(section['title'])}</summary>" in html
    assert "hx-trigger" not in html  # finished: nothing to poll
    assert 'data-action="retry"' not in html
    assert 'data-action="cancel"' not in html
    client.cookies.set("runhq_lang", "en")
    html = _page(client, f"/runs/{run.id}")
    assert "Daily executive brief" in html
    assert "Facts gathered" in html
    assert 'data-cost="estimated">€0.10<' in html


def test_a_failed_run_page_shows_the_error_and_retry(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    failed = add_run(
        session, team, runtime.registry, "CODE_REVIEW", status=RunStatus.failed, platform_key="app"
    )
    session.commit()
    log_in(client, team.emails[Role.operator])
    html = _page(client, f"/runs/{failed.id}")
    assert "Erreur sur la plateforme app" in html
    assert "model provider failed: HTTP 503" in html
    assert 'data-action="retry"' in html
    assert "Pas encore de rapport." in html
    assert "Aucun fait recueilli pour l&#39;instant." in html


def test_an_active_run_page_polls_and_can_be_cancelled(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _queued(session, runtime, team)
    log_in(client, team.emails[Role.viewer])
    html = _page(client, f"/runs/{run.id}")
    assert f'hx-get="/runs/{run.id}/live" hx-trigger="every 2s"' in html
    assert 'data-action="cancel"' not in html  # a viewer
    assert "—" in html.split('data-cost="actual">')[1][:20]  # no actual cost yet: a dash
    live = client.get(f"/runs/{run.id}/live")
    assert live.status_code == 200
    assert live.text.lstrip().startswith('<div id="run-detail"')
    assert "<html" not in live.text
    client.cookies.clear()
    log_in(client, team.emails[Role.operator])
    html = _page(client, f"/runs/{run.id}")
    assert 'data-action="cancel"' in html
    r = client.post(
        f"/runs/{run.id}/cancel", data={"csrf_token": csrf_of(html)}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/runs/{run.id}"
    html = _page(client, f"/runs/{run.id}")
    assert 'id="run-status" data-status="cancelled"' in html
    assert "hx-trigger" not in html
    assert 'data-action="retry"' in html  # a cancelled run can be retried


def test_a_pending_run_page_points_to_approvals(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    run = _queued(session, runtime, team, "RELEASE_GATE_CHECK")
    log_in(client, team.emails[Role.owner])
    html = _page(client, f"/runs/{run.id}")
    assert "Ce run attend la décision d&#39;un propriétaire." in html
    assert 'href="/approvals"' in html
    assert 'hx-trigger="every 15s"' in html


@pytest.mark.parametrize(
    "path",
    [
        "/runs/{unknown}",
        "/runs/not-a-uuid",
        "/runs/{unknown}/live",
        "/runs/%00%ff/live",
        "/runs/" + "9" * 500,
    ],
)
def test_unknown_runs_are_404_pages(client: TestClient, team: Team, path: str) -> None:
    log_in(client, team.emails[Role.viewer])
    r = client.get(path.format(unknown=uuid.uuid4()))
    assert r.status_code == 404
    assert "Page introuvable" in r.text or "no run" in r.text


def test_runs_of_another_workspace_are_not_found(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    other = make_team(session)
    theirs = add_run(session, other, runtime.registry, "CODE_REVIEW", status=RunStatus.failed)
    session.commit()
    log_in(client, team.emails[Role.owner])
    assert client.get(f"/runs/{theirs.id}").status_code == 404
    token = csrf_of(_page(client))
    for action in ("retry", "cancel"):
        r = client.post(
            f"/runs/{theirs.id}/{action}", data={"csrf_token": token}, follow_redirects=False
        )
        assert r.status_code == 404, action
    r = client.post("/runs/nope/retry", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404


def test_not_logged_in_goes_to_the_login(client: TestClient) -> None:
    r = client.get("/runs?status=failed", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/runs%3Fstatus%3Dfailed"
    r = client.get(f"/runs/{uuid.uuid4()}/live", headers=HTMX, follow_redirects=False)
    assert r.status_code == 401
    assert r.headers["HX-Redirect"].startswith("/login")


# -- cheap counters and bounded queries ---------------------------------------------------------


def test_the_badge_counters(session: Session, runtime: Runtime, team: Team) -> None:
    other = make_team(session)
    add_run(session, team, runtime.registry, "SEO_AUDIT", status=RunStatus.failed)
    add_run(
        session, team, runtime.registry, "SEO_AUDIT", status=RunStatus.failed, ago=timedelta(days=2)
    )
    add_run(session, other, runtime.registry, "SEO_AUDIT", status=RunStatus.failed)
    runs.create_run(session, team.operator, runtime.registry, run_type="RELEASE_GATE_CHECK")
    runs.create_run(session, other.operator, runtime.registry, run_type="RELEASE_GATE_CHECK")
    since = clock.now() - timedelta(hours=24)
    assert runs.count_failed_since(session, team.workspace_id, since) == 1
    assert runs.count_failed_since(session, team.workspace_id, since - timedelta(days=3)) == 2
    assert runs.count_pending_approval(session, team.workspace_id) == 1
    fresh = make_team(session)
    assert runs.count_failed_since(session, fresh.workspace_id, since) == 0
    assert runs.count_pending_approval(session, fresh.workspace_id) == 0


def _grow(session: Session, runtime: Runtime, team: Team, n: int) -> None:
    kinds = ("CODE_REVIEW", "SEO_AUDIT", "FINANCIAL_REPORT")
    for i in range(n):
        status = RunStatus.failed if i % 3 == 0 else RunStatus.completed
        add_run(
            session,
            team,
            runtime.registry,
            kinds[i % 3],
            status=status,
            ago=timedelta(minutes=5 + i),
            platform_key=f"p{i % 4}",
        )
    add_platform(session, team.admin, f"p-{uuid.uuid4().hex[:8]}", [True])
    session.commit()


def _count(client: TestClient, db_engine: Engine, url: str) -> list[str]:
    with counted_statements(db_engine) as statements:
        r = client.get(url)
        assert r.status_code == 200, r.text
    return statements


@pytest.mark.parametrize("url", ["/runs", "/runs?status=failed&period=7d&agent=CTO"])
def test_the_list_issues_the_same_queries_for_1_and_30_runs(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    db_engine: Engine,
    url: str,
) -> None:
    log_in(client, team.emails[Role.owner])
    _grow(session, runtime, team, 1)
    few = _count(client, db_engine, url)
    _grow(session, runtime, team, 29)
    many = _count(client, db_engine, url)
    assert len(few) == len(many), "\n".join(many)
    queries = [s for s in many if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(queries) <= 10, "\n".join(queries)


def test_the_live_rows_and_the_run_page_are_bounded(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    team: Team,
    db_engine: Engine,
    make_client: Callable[..., TestClient],
) -> None:
    log_in(client, team.emails[Role.owner])
    active = [
        _queued(session, runtime, team, kind)
        for kind in ("CODE_REVIEW", "SEO_AUDIT", "PLATFORM_STATUS_REVIEW", "FINANCIAL_REPORT")
    ]
    one = _count(client, db_engine, f"/runs/live?ids={active[0].id}")
    four = _count(client, db_engine, "/runs/live?" + "&".join(f"ids={r.id}" for r in active))
    assert len(one) == len(four)
    brief = run_daily_brief(runtime, session, team)
    page = [
        s
        for s in _count(client, db_engine, f"/runs/{brief.id}")
        if not s.upper().startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(page) <= 8, "\n".join(page)


def test_keys_the_templates_compose_exist() -> None:
    """Keys built at render time (``'runs.filters.periods.' ~ period`` and the like)."""
    from runhq.dashboard.runs_page import PERIODS
    from runhq.i18n import LANGS, get_catalog
    from runhq.logs.schemas import LogLevel

    needed = [f"runs.filters.periods.{period}" for period in PERIODS]
    needed += [f"run.logs.levels.{level.value}" for level in LogLevel]
    needed += [
        f"runs.filters.{field}"
        for field in ("status", "run_type", "agent", "platform", "period", "cursor")
    ]
    needed += [f"run.steps.{state}" for state in ("done", "running", "waiting", "stopped")]
    needed += [f"run.report.verdict_{verdict}" for verdict in ("pass", "fail")]
    for lang in LANGS:
        catalog = get_catalog(lang)
        assert [key for key in needed if key not in catalog] == [], lang
