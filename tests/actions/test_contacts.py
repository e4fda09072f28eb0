"""/api/v1/contacts: listing (paginated) and erasure (RGPD art. 17), admins only."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.actions.models import CampaignDelivery, Contact
from runhq.clock import FrozenClock
from runhq.runs import service as runs
from runhq.runtime import Runtime
from tests.conftest import Team, bearer, counted_statements


def _import(client: TestClient, h: dict[str, str], *emails: str) -> None:
    for email in emails:  # one request each, a second apart: a known order
        r = client.post("/api/v1/contacts", json=[{"email": email, "consent": True}], headers=h)
        assert r.status_code == 201, r.text


def test_contacts_are_listed_newest_first_in_pages(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.admin)
    with FrozenClock(clock.now()) as frozen:
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            _import(client, h, email)
            frozen.advance(timedelta(seconds=1))
    first = client.get("/api/v1/contacts", params={"limit": 2}, headers=h).json()
    assert [c["email"] for c in first["items"]] == ["c@example.com", "b@example.com"]
    assert first["items"][0]["consent"] is True
    assert "unsubscribe_token" not in first["items"][0]  # a secret: never listed
    second = client.get(
        "/api/v1/contacts", params={"limit": 2, "cursor": first["next_cursor"]}, headers=h
    ).json()
    assert [c["email"] for c in second["items"]] == ["a@example.com"]
    assert second["next_cursor"] is None


def test_listing_bad_input(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.admin)
    assert client.get("/api/v1/contacts", params={"limit": 0}, headers=h).status_code == 422
    assert client.get("/api/v1/contacts", params={"limit": 201}, headers=h).status_code == 422
    bad = client.get("/api/v1/contacts", params={"cursor": "not-a-cursor"}, headers=h)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "cursor"
    operator = bearer(runtime, team.operator)
    assert client.get("/api/v1/contacts", headers=operator).status_code == 403
    assert client.get("/api/v1/contacts").status_code == 401


def test_a_contact_is_erased_with_its_deliveries(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.admin)
    _import(client, h, "gone@example.com", "kept@example.com")
    run, _ = runs.create_run(
        session,
        team.operator,
        runtime.registry,
        run_type="MASS_EMAIL_CAMPAIGN",
        params={"subject": "News", "body": "Hello."},
    )
    for contact in session.scalars(select(Contact)).all():
        session.add(
            CampaignDelivery(
                workspace_id=team.workspace_id,
                campaign_id=run.id,
                run_id=run.id,
                contact_id=contact.id,
                status="sent",
                created_at=clock.now(),
            )
        )
    session.commit()
    # Addresses are compared as imported: lower case, trimmed.
    assert client.delete("/api/v1/contacts/GONE@example.com", headers=h).status_code == 204
    listed = client.get("/api/v1/contacts", headers=h).json()["items"]
    assert [c["email"] for c in listed] == ["kept@example.com"]
    assert session.scalar(select(func.count(CampaignDelivery.id))) == 1
    again = client.delete("/api/v1/contacts/gone@example.com", headers=h)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"


def test_erasure_bad_input_writes_nothing(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.admin)
    _import(client, h, "x@example.com")
    assert client.delete("/api/v1/contacts/not-an-email", headers=h).status_code == 422
    operator = bearer(runtime, team.operator)
    assert client.delete("/api/v1/contacts/x@example.com", headers=operator).status_code == 403
    assert session.scalar(select(func.count(Contact.id))) == 1


def test_an_import_names_its_bad_row_and_keeps_nothing(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    h = bearer(runtime, team.admin)
    rows = [{"email": f"p{i}@example.com", "consent": True} for i in range(5)]
    rows.insert(3, {"email": "not-an-email", "consent": True})
    r = client.post("/api/v1/contacts", json=rows, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("row 4: ")
    assert r.json()["error"]["details"] == {"row": 4, "field": "email"}
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_an_import_costs_the_same_queries_for_ten_or_a_thousand_rows(
    client: TestClient, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    h = bearer(runtime, team.admin)

    def rows(n: int, start: int = 0) -> list[dict[str, object]]:
        return [{"email": f"c{i}@example.com", "consent": True} for i in range(start, start + n)]

    with counted_statements(db_engine) as small:
        assert client.post("/api/v1/contacts", json=rows(10), headers=h).status_code == 201
    with counted_statements(db_engine) as large:  # 10 existing (updated), 490 new
        r = client.post("/api/v1/contacts", json=rows(500), headers=h)
    assert r.json() == {"written": 500, "audience": 500}
    selects = [s for s in large if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= len([s for s in small if s.lstrip().upper().startswith("SELECT")])
