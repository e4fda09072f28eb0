"""Errors on pages are pages (or HTMX toasts); the API keeps its JSON errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from runhq.auth.models import Role
from runhq.dashboard.errors import describe
from runhq.dashboard.pages import CONTENT_SECURITY_POLICY
from runhq.i18n import Translator
from runhq.runtime import Runtime
from runhq.web.app import create_app
from runhq.web.errors import ErrorInfo
from tests.conftest import Team
from tests.dashboard.conftest import csrf_of, log_in


@pytest.fixture
def failing_client(runtime: Runtime) -> Iterator[TestClient]:
    """The app with two routes that fail unexpectedly: a page and an API one."""
    app = create_app(runtime, background=False)

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret detail: postgres://user:pw@db")

    @app.get("/api/v1/boom", include_in_schema=False)
    def api_boom() -> None:
        raise RuntimeError("secret detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_unknown_page_is_an_html_404(client: TestClient) -> None:
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in r.text
    assert "Page introuvable" in r.text
    assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["X-Frame-Options"] == "DENY"
    client.cookies.set("runhq_lang", "en")
    r = client.get("/no-such-page")
    assert '<html lang="en">' in r.text
    assert "Page not found" in r.text


def test_the_api_keeps_json_errors(client: TestClient) -> None:
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "Not Found"}}
    r = client.get("/api/v1/runs")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = client.post("/api/v1/auth/token", data={})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert client.get("/health/nope").headers["content-type"] == "application/json"


def test_unexpected_errors_show_a_reference_and_nothing_else(
    failing_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    r = failing_client.get("/boom")
    assert r.status_code == 500
    assert "Erreur interne" in r.text
    assert "secret detail" not in r.text
    assert "Traceback" not in r.text
    reference = next(
        record.getMessage().split("ref=")[1].split()[0]
        for record in caplog.records
        if "unhandled error" in record.getMessage()
    )
    assert reference in r.text  # the one in the server log
    htmx = failing_client.get("/boom", headers={"HX-Request": "true"})
    assert htmx.status_code == 500
    assert htmx.text == ""
    toast = json.loads(htmx.headers["HX-Trigger"])["runhq:toast"]
    assert toast["level"] == "error"
    assert toast["title"] == "Erreur interne"
    assert "secret" not in htmx.headers["HX-Trigger"]
    api = failing_client.get("/api/v1/boom")
    assert api.status_code == 500
    assert api.json()["error"]["code"] == "internal_error"


def test_expected_errors_keep_their_status_and_message(client: TestClient, team: Team) -> None:
    log_in(client, team.emails[Role.owner])
    token = csrf_of(client.get("/").text)
    r = client.post("/lang", data={"lang": "<i>de", "csrf_token": token})
    assert r.status_code == 422
    assert "Saisie invalide" in r.text
    # In the visitor's language, what was sent escaped.
    assert "Langue inconnue «\u00a0&lt;i&gt;de\u00a0»" in r.text
    assert "<i>de" not in r.text
    r = client.get("/logout")
    assert r.status_code == 405
    assert "Action non prise en charge" in r.text
    assert r.headers["allow"] == "POST"


def test_pages_send_security_headers(client: TestClient, team: Team) -> None:
    log_in(client, team.emails[Role.viewer])
    r = client.get("/")
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
        assert header in r.headers
    assert r.headers["Cache-Control"] == "no-store"
    assert "/openapi.json" not in r.text
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/login", "/logout", "/lang"} & set(paths)


def test_static_files_are_served(client: TestClient) -> None:
    page = client.get("/login").text
    for name in ("app.css", "app.js", "vendor/htmx.min.js", "favicon.svg"):
        assert f"/static/{name}?v=" in page
        r = client.get(f"/static/{name}")
        assert r.status_code == 200, name
    assert client.get("/static/vendor/htmx.LICENSE.txt").status_code == 200
    assert client.get("/static/../config.py").status_code == 404


@pytest.mark.parametrize(
    ("code", "status", "details", "fr", "en"),
    [
        (
            "invalid_input",
            422,
            {"field": "params.months", "param": "months", "reason": "type", "expected": "integer"},
            "«\u00a0months\u00a0» doit être un nombre entier.",
            "“months” must be a whole number.",
        ),
        (
            "invalid_input",
            422,
            {"field": "params.x", "param": "x", "reason": "unknown", "accepted": ["a", "b"]},
            "Paramètre inconnu «\u00a0x\u00a0»\u00a0; paramètres acceptés\u00a0: a, b.",
            "Unknown parameter “x”; accepted parameters: a, b.",
        ),
        (
            "invalid_input",
            422,
            {"field": "cursor", "reason": "cursor"},
            "Ce lien de page n'est pas valide\u00a0: revenez à la première page de la liste.",
            "This page link is not valid: go back to the first page of the list.",
        ),
        (
            "invalid_input",
            422,
            {"field": "lang", "reason": "lang", "lang": "xx", "choices": ["fr", "en"]},
            "Langue inconnue «\u00a0xx\u00a0»\u00a0; langues proposées\u00a0: fr, en.",
            "Unknown language “xx”; languages offered: fr, en.",
        ),
        (
            "invalid_transition",
            409,
            {"plan_hash": "abc", "reason": "plan_changed"},
            "Le plan a changé depuis que vous l'avez consulté",
            "The plan changed since you looked at it",
        ),
        (
            "duplicate_run",
            409,
            {"running_run_id": "r-1", "run_type": "SEO_AUDIT", "status": "running"},
            "Un run SEO_AUDIT est déjà dans l'état «\u00a0En cours\u00a0» (r-1)",
            'A SEO_AUDIT run is already in the state "Running" (r-1)',
        ),
        (
            "permission_denied",
            403,
            {"required_role": "owner", "role": "operator"},
            "Cette action demande le rôle Propriétaire\u00a0; votre rôle\u00a0: Opérateur.",
            "This needs the Owner role; your role: Operator.",
        ),
        (
            "invalid_transition",
            409,
            {"status": "completed", "action": "cancel"},
            "Impossible de l'annuler\u00a0: ce run est «\u00a0Terminé\u00a0».",
            'Cannot cancel it: this run is "Completed".',
        ),
        (
            "budget_exceeded",
            402,
            {
                "scope": "CFO",
                "monthly_limit_eur": 10.0,
                "spent_eur": 9.5,
                "reserved_eur": 0.25,
                "estimate_eur": 0.5,
            },
            "Budget mensuel de l'agent CFO dépassé",
            "Monthly budget of agent CFO exceeded",
        ),
    ],
)
def test_expected_errors_speak_the_visitors_language(
    code: str, status: int, details: dict[str, object], fr: str, en: str
) -> None:
    info = ErrorInfo(status, code, "the service's English message", details)
    for lang, expected in (("fr", fr), ("en", en)):
        _, message = describe(Translator(lang, "Europe/Paris"), info)
        assert expected in message, (lang, message)
    # Details without what the sentence needs: the service's own words.
    for partial in ({"run_type": "X"}, {**details, "action": "no_such_action"}):
        info = ErrorInfo(status, code, "the service's English message", partial)
        if code != "invalid_transition" and "action" in partial:
            continue  # only refusals of an action name one
        assert describe(Translator("fr", "Europe/Paris"), info)[1] == (
            "the service's English message"
        )


def test_a_tampered_page_link_or_language_form_is_explained_in_french(
    client: TestClient, team: Team
) -> None:
    log_in(client, team.emails[Role.owner])
    for path in ("/approvals?cursor=x", "/autopilot?cursor=x"):
        r = client.get(path)
        assert r.status_code == 422, path
        assert "Ce lien de page n&#39;est pas valide" in r.text, path  # escaped
        assert "cursor is not valid" not in r.text, path
    page = client.get("/")
    r = client.post(
        "/lang", data={"lang": "xx", "csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.status_code == 422
    assert "Langue inconnue «\u00a0xx\u00a0»" in r.text
    assert "runhq_lang" not in r.headers.get("set-cookie", "")
