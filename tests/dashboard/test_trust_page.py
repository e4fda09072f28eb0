"""Trust (/trust): the latest security scan (or how to run one), the security choices with the
installation's own values, both languages, and a bounded number of queries."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq.auth.models import Role
from runhq.clock import FrozenClock
from runhq.dashboard.trust_page import SCAN_RUN_TYPES
from runhq.runs.models import RunStatus
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements
from tests.dashboard.conftest import add_run, log_in

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 13:00 in Paris
TOPICS = [
    "passwords",
    "api_keys",
    "session",
    "csrf",
    "csp",
    "roles",
    "plans",
    "budgets",
    "logs",
    "double_run",
    "webhooks",
    "data",
    "model",
]


def _page(client: TestClient, team: Team, role: Role = Role.viewer) -> str:
    log_in(client, team.emails[role])
    r = client.get("/trust")
    assert r.status_code == 200, r.text
    return r.text


def _scan_card(html: str) -> str:
    match = re.search(r'<section class="card trust-scan".*?</section>', html, re.S)
    assert match
    return match.group(0)


def _topic(html: str, topic: str) -> str:
    match = re.search(rf'<li class="card trust-item" data-topic="{topic}">.*?</li>', html, re.S)
    assert match, topic
    return match.group(0)


def test_the_scan_types_are_in_the_registry(runtime: Runtime) -> None:
    for key in SCAN_RUN_TYPES:
        assert runtime.registry.get(key).agent == "CISO"


def test_no_scan_yet_says_how_to_run_one(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    # Neither a failed scan nor another type counts.
    add_run(session, team, runtime.registry, "VULNERABILITY_SCAN", status=RunStatus.failed)
    add_run(session, team, runtime.registry, "CODE_REVIEW")
    session.commit()
    card = _scan_card(_page(client, team))
    assert 'data-state="none"' in card
    assert "Aucune analyse de sécurité pour l&#39;instant." in card
    assert "«\u00a0Audit de sécurité RLS\u00a0»" in card
    assert "«\u00a0Analyse de vulnérabilités\u00a0»" in card
    assert "runhq run SECURITY_AUDIT_RLS --wait" in card
    assert 'href="/registry"' in card
    assert card.count(">jamais<") == 2
    assert "/runs/" not in card


def test_the_latest_completed_scan_links_to_its_report(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    with FrozenClock(T0):
        registry = runtime.registry
        audit = add_run(session, team, registry, "SECURITY_AUDIT_RLS", ago=timedelta(days=3))
        scan = add_run(
            session, team, registry, "VULNERABILITY_SCAN", ago=timedelta(days=1), platform_key="app"
        )
        # Newer but not completed: not a scan result.
        add_run(session, team, registry, "SECURITY_AUDIT_RLS", status=RunStatus.failed)
        session.commit()
        card = _scan_card(_page(client, team))
    assert 'data-state="ok"' in card
    assert scan.finished_at is not None
    assert f'<time datetime="{scan.finished_at.isoformat()}">19 nov. 2026 à 13:00</time>' in card
    assert "(il y a 1 j)" in card
    assert "Analyse de vulnérabilités · plateforme app" in card
    assert "VULNERABILITY_SCAN went fine." in card  # its summary
    assert f'<a class="button button--primary" href="/runs/{scan.id}">Lire le rapport</a>' in card
    kinds = card.split("Par type d&#39;analyse")[1]
    assert f'href="/runs/{audit.id}"' in kinds
    assert "17 nov. 2026 à 13:00" in kinds


def test_the_security_choices_with_the_installations_values(
    make_client: Callable[..., TestClient], team: Team
) -> None:
    client = make_client(log_retention_days=7, approval_ttl_hours=6, session_ttl_minutes=90)
    html = _page(client, team, Role.operator)
    for topic in TOPICS:
        assert _topic(html, topic)
    assert "Argon2id" in _topic(html, "passwords")
    assert "SHA-256" in _topic(html, "api_keys")
    session = _topic(html, "session")
    assert "HttpOnly" in session
    assert "SameSite=Lax" in session
    assert "expire après 1,5 h" in session
    assert "Cette visite passe en HTTP" in session
    assert "default-src &#39;self&#39;" in _topic(html, "csp")
    assert "frame-ancestors &#39;none&#39;" in _topic(html, "csp")
    assert "Votre rôle\u00a0: Opérateur." in _topic(html, "roles")
    assert "expire après 6 h" in _topic(html, "plans")
    assert "avant tout appel à un modèle" in _topic(html, "budgets")
    assert "conservés 7 jours" in _topic(html, "logs")
    assert "HMAC-SHA256" in _topic(html, "webhooks")
    assert re.search(r"\((SQLite|PostgreSQL)\)", _topic(html, "data"))
    assert "Aucun fournisseur de modèle n&#39;est configuré" in _topic(html, "model")


def test_over_https_the_cookie_is_secure(
    make_client: Callable[..., TestClient], team: Team
) -> None:
    client = make_client(base_url="https://testserver")
    html = _page(client, team)
    assert "Cette visite passe par HTTPS" in _topic(html, "session")
    assert "conservés 30 jours" in _topic(html, "logs")  # the default
    assert "expire après 12 h" in _topic(html, "session")


def test_english(client: TestClient, session: Session, runtime: Runtime, team: Team) -> None:
    add_run(session, team, runtime.registry, "SECURITY_AUDIT_RLS")
    session.commit()
    log_in(client, team.emails[Role.owner])
    client.cookies.set("runhq_lang", "en")
    html = client.get("/trust").text
    assert "<h1>Trust</h1>" in html
    assert "Read the report" in html
    assert "RLS security audit" in html
    assert "Our security choices" in html
    assert "Structured logs are kept 30 days" in html
    assert "Your role: Owner." in html


def test_a_bounded_number_of_queries(
    client: TestClient, session: Session, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    log_in(client, team.emails[Role.owner])

    def grow(n: int) -> None:
        for i in range(n):
            for run_type in SCAN_RUN_TYPES:
                add_run(session, team, runtime.registry, run_type, ago=timedelta(hours=i + 1))
        session.commit()

    def count() -> list[str]:
        with counted_statements(db_engine) as statements:
            assert client.get("/trust").status_code == 200
        return statements

    grow(1)
    few = count()
    grow(19)
    many = count()
    assert len(few) == len(many), "\n".join(many)
    queries = [s for s in many if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(queries) <= 8, "\n".join(queries)
