"""Login, tokens and API keys: 401 for who-are-you, 403 for not-allowed."""

from __future__ import annotations

from datetime import timedelta

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth import service as auth
from runhq.auth.models import ApiKey, EndedSession, LoginFailure
from runhq.clock import FrozenClock
from runhq.errors import NotAuthenticated
from runhq.logs.models import StructuredLog
from runhq.runtime import Runtime
from tests.conftest import PASSWORD, Team, bearer


def _login(client: TestClient, email: str, password: str) -> tuple[int, dict[str, object]]:
    r = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return r.status_code, r.json()


def test_password_login_gives_a_working_jwt(client: TestClient, team: Team) -> None:
    status, body = _login(client, team.emails[auth.Role.owner], PASSWORD)
    assert status == 200
    assert body["token_type"] == "bearer"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["role"] == "owner"


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient, team: Team) -> None:
    a = _login(client, team.emails[auth.Role.owner], "wrong-password-x")
    b = _login(client, "nobody@example.com", PASSWORD)
    assert a[0] == b[0] == 401
    assert a[1] == b[1]


def test_login_form_fields_are_required(client: TestClient) -> None:
    r = client.post("/api/v1/auth/token", data={"username": "x@example.com"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "password"


def test_missing_token_is_401_with_www_authenticate(client: TestClient) -> None:
    r = client.get("/api/v1/runs")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "auth/token" in r.json()["error"]["message"]


def test_expired_jwt_is_401(client: TestClient, runtime: Runtime, team: Team) -> None:
    with FrozenClock(clock.now() - timedelta(hours=2)):
        headers = bearer(runtime, team.owner)
    r = client.get("/api/v1/runs", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_tampered_jwt_is_401(client: TestClient, runtime: Runtime, team: Team) -> None:
    token = bearer(runtime, team.viewer)["Authorization"].split()[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = str(team.owner.user_id)  # escalate, re-signed with another key
    forged = jwt.encode(claims, "another-key-" + "y" * 40, algorithm="HS256")
    assert (
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    )
    header, payload, signature = token.split(".")
    flipped = (
        header + "." + payload + "." + signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    )
    assert (
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {flipped}"}).status_code
        == 401
    )
    none_alg = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    assert (
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {none_alg}"}).status_code
        == 401
    )


def test_api_key_is_shown_once_hashed_at_rest_and_revocable(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    h = bearer(runtime, team.operator)
    created = client.post("/api/v1/auth/api-keys", json={"name": "ci"}, headers=h)
    assert created.status_code == 201
    raw = created.json()["key"]
    assert raw.startswith("rhq_")
    stored = session.scalars(select(ApiKey.key_hash)).all()
    assert raw not in stored
    assert all(len(h) == 64 for h in stored)
    listed = client.get("/api/v1/auth/api-keys", headers=h).json()
    assert "key" not in listed[0]
    key_headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/runs", headers=key_headers).status_code == 200
    # The key carries its user's role: an operator's key cannot approve.
    run = client.post(
        "/api/v1/runs", json={"run_type": "RELEASE_GATE_CHECK"}, headers=key_headers
    ).json()
    assert client.post(f"/api/v1/runs/{run['id']}/approve", headers=key_headers).status_code == 403
    revoke = client.delete(f"/api/v1/auth/api-keys/{created.json()['id']}", headers=h)
    assert revoke.status_code == 200
    assert client.get("/api/v1/runs", headers=key_headers).status_code == 401


def test_bad_api_key_inputs(
    client: TestClient, runtime: Runtime, team: Team, session: Session
) -> None:
    h = bearer(runtime, team.operator)
    before = session.scalar(select(func.count(ApiKey.id)))
    assert client.post("/api/v1/auth/api-keys", json={"name": ""}, headers=h).status_code == 422
    assert client.post("/api/v1/auth/api-keys", json={}, headers=h).status_code == 422
    assert session.scalar(select(func.count(ApiKey.id))) == before
    assert (
        client.get("/api/v1/runs", headers={"Authorization": "Bearer rhq_nope"}).status_code == 401
    )
    r = client.delete("/api/v1/auth/api-keys/00000000-0000-0000-0000-000000000000", headers=h)
    assert r.status_code == 404


def test_viewer_can_read_but_not_act(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.viewer)
    assert client.get("/api/v1/run-types", headers=h).status_code == 200
    assert client.get("/api/v1/runs", headers=h).status_code == 200
    r = client.post("/api/v1/runs", json={"run_type": "SEO_AUDIT"}, headers=h)
    assert r.status_code == 403
    assert "operator" in r.json()["error"]["message"]


def test_repeated_failures_lock_the_account_for_the_window(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    email, limit = team.emails[auth.Role.owner], runtime.settings.login_max_failures
    window = timedelta(minutes=runtime.settings.login_window_minutes)
    with FrozenClock(clock.now()) as frozen:
        for _ in range(limit):
            assert _login(client, email, "wrong-password-x")[0] == 401
        status, body = _login(client, email, PASSWORD)  # even the right password now
        assert status == 429
        error = body["error"]
        assert isinstance(error, dict)
        assert error["code"] == "too_many_login_attempts"
        assert "try again in 15 minutes" in error["message"]
        assert 0 < error["details"]["retry_after_seconds"] <= window.total_seconds() + 1
        # Only that account: another one logs in.
        assert _login(client, team.emails[auth.Role.admin], PASSWORD)[0] == 200
        # An email with no account is throttled the same way (no account enumeration).
        for _ in range(limit):
            assert _login(client, "nobody@example.com", "wrong-password-x")[0] == 401
        ghost = _login(client, "NOBODY@example.com", PASSWORD)
        assert ghost[0] == 429
        frozen.advance(window + timedelta(seconds=1))
        assert _login(client, email, PASSWORD)[0] == 200


def test_spraying_many_accounts_from_one_address_is_refused(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    per_address = runtime.settings.login_max_failures_per_address
    for i in range(per_address):  # one failure per account: no account reaches its limit
        assert _login(client, f"user{i}@example.com", "wrong-password-x")[0] == 401
    status, body = _login(client, team.emails[auth.Role.owner], PASSWORD)
    assert status == 429
    error = body["error"]
    assert isinstance(error, dict)
    assert "this address" in error["message"]


def test_failed_logins_are_purged_after_a_day(session: Session, runtime: Runtime) -> None:
    throttle = auth.get_login_throttle(runtime.settings)
    with FrozenClock(clock.now()) as frozen:
        for _ in range(2):
            try:
                auth.log_in(
                    session,
                    email="x@example.com",
                    password="wrong-password-x",
                    address="10.0.0.1",
                    throttle=throttle,
                )
            except NotAuthenticated:
                pass
        session.flush()
        assert session.scalar(select(func.count(LoginFailure.id))) == 2
        frozen.advance(timedelta(days=1, seconds=1))
        assert auth.purge_login_failures(session, older_than=timedelta(days=1)) == 2
    assert session.scalar(select(func.count(LoginFailure.id))) == 0


def _logged_in(client: TestClient, email: str) -> dict[str, str]:
    """The headers of a new login session of ``email``."""
    return {"Authorization": f"Bearer {_login(client, email, PASSWORD)[1]['access_token']}"}


def test_logout_ends_this_session_only(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    email = team.emails[auth.Role.operator]
    first, second = _logged_in(client, email), _logged_in(client, email)
    _, raw_key = auth.create_api_key(session, team.operator, name="ci")
    session.commit()

    r = client.post("/api/v1/auth/logout", headers=first)
    assert (r.status_code, r.content) == (204, b"")
    r = client.get("/api/v1/auth/me", headers=first)
    assert r.status_code == 401
    assert "logged out" in r.json()["error"]["message"]
    # Another browser of the same user, and the user's API key, go on.
    assert client.get("/api/v1/auth/me", headers=second).status_code == 200
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {raw_key}"}).is_success
    # Logging out twice: the session is already over.
    assert client.post("/api/v1/auth/logout", headers=first).status_code == 401
    who = str(team.operator.user_id)
    lines = session.scalars(
        select(StructuredLog.meta).where(StructuredLog.message == "auth.logged_out")
    ).all()
    assert lines == [{"user_id": who, "by": who, "via": "api", "scope": "session"}]
    ended = session.scalars(select(EndedSession)).all()
    assert [(e.user_id, e.workspace_id) for e in ended] == [
        (team.operator.user_id, team.workspace_id)
    ]
    # Forgotten once the token would have expired anyway, not before.
    assert auth.purge_ended_sessions(session) == 0
    with FrozenClock(ended[0].expires_at + timedelta(seconds=1)):
        assert auth.purge_ended_sessions(session) == 1


def test_logout_everywhere_ends_every_jwt_of_the_user_but_not_api_keys(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    email = team.emails[auth.Role.operator]
    first, second = _logged_in(client, email), _logged_in(client, email)
    _, raw_key = auth.create_api_key(session, team.operator, name="ci")
    session.commit()
    others = bearer(runtime, team.owner)

    r = client.post("/api/v1/auth/logout", params={"everywhere": "true"}, headers=first)
    assert (r.status_code, r.content) == (204, b"")
    for headers in (first, second):  # every session of that user, not only the caller's
        r = client.get("/api/v1/auth/me", headers=headers)
        assert r.status_code == 401
        assert "logged out" in r.json()["error"]["message"]
    assert client.get("/api/v1/auth/me", headers=others).status_code == 200  # another user
    key = {"Authorization": f"Bearer {raw_key}"}
    assert client.get("/api/v1/auth/me", headers=key).status_code == 200
    fresh = _logged_in(client, email)
    assert client.get("/api/v1/auth/me", headers=fresh).status_code == 200
    lines = session.scalars(
        select(StructuredLog.meta).where(StructuredLog.message == "auth.logged_out")
    ).all()
    who = str(team.operator.user_id)
    assert lines == [{"user_id": who, "by": who, "via": "api", "scope": "everywhere"}]
    assert session.scalar(select(func.count()).select_from(EndedSession)) == 0


def test_logout_bad_inputs(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    assert client.post("/api/v1/auth/logout").status_code == 401
    assert (
        client.post("/api/v1/auth/logout", headers={"Authorization": "Bearer x"}).status_code == 401
    )
    # An API key is not a session: refused, and nothing is ended.
    _, raw_key = auth.create_api_key(session, team.owner, name="ci")
    session.commit()
    jwt_headers = bearer(runtime, team.owner)
    r = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {raw_key}"})
    assert r.status_code == 422
    assert "api-keys" in r.json()["error"]["message"]
    assert client.get("/api/v1/auth/me", headers=jwt_headers).status_code == 200
    assert (
        session.scalar(select(func.count()).where(StructuredLog.message == "auth.logged_out")) == 0
    )
    r = client.post("/api/v1/auth/logout", params={"everywhere": "maybe"}, headers=jwt_headers)
    assert r.status_code == 422
    assert "everywhere" in r.text
    # A token from before per-session logout (no session id) can only log out everywhere.
    token = jwt_headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims["sid"]
    secret = runtime.settings.get_secret_key()
    legacy = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}
    r = client.post("/api/v1/auth/logout", headers=legacy)
    assert r.status_code == 422
    assert "everywhere" in r.json()["error"]["message"]
    assert client.get("/api/v1/auth/me", headers=legacy).status_code == 200
    assert client.get("/api/v1/auth/me", headers=jwt_headers).status_code == 200
    assert session.scalar(select(func.count()).select_from(EndedSession)) == 0


def test_a_jwt_with_a_malformed_session_epoch_is_401(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    token = bearer(runtime, team.owner)["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "se": "0"}, runtime.settings.get_secret_key(), algorithm="HS256")
    r = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    for sid in ("not-hex", 12, None, ["x"]):
        forged = jwt.encode({**claims, "sid": sid}, runtime.settings.get_secret_key())
        r = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == (200 if sid is None else 401), sid
