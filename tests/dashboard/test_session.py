"""Login, logout, the session cookie, CSRF and redirects (no browser)."""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.dashboard.session import PERMISSIONS, safe_next
from runhq.errors import PermissionDenied
from runhq.runs import service as runs
from runhq.runtime import Runtime
from tests.conftest import PASSWORD, Team
from tests.dashboard.conftest import csrf_of, log_in


def _set_cookie(response: object, name: str) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    found = [h for h in headers if h.startswith(f"{name}=")]
    assert found, f"no Set-Cookie for {name}: {headers}"
    return found[-1]


def _attrs(header: str) -> dict[str, str]:
    cookie = SimpleCookie()
    cookie.load(header)
    morsel = next(iter(cookie.values()))
    return {k: str(v) for k, v in morsel.items() if v} | {"value": morsel.value}


# -- logging in and out ------------------------------------------------------------------------


def test_pages_redirect_to_login_with_the_way_back(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    r = client.get("/?tab=brief", follow_redirects=False)
    assert r.headers["location"] == "/login?next=/%3Ftab%3Dbrief"


def test_htmx_requests_get_hx_redirect(client: TestClient) -> None:
    r = client.get(
        "/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?x=1"},
        follow_redirects=False,
    )
    assert r.status_code == 401
    assert r.headers["HX-Redirect"] == "/login?next=/%3Fx%3D1"
    # A current URL on another site is not a way back.
    r = client.get(
        "/",
        headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.headers["HX-Redirect"] == "/login"


def test_login_lands_on_next_and_the_session_works(client: TestClient, team: Team) -> None:
    form = client.get("/login?next=/%3Ftab%3Dbrief")
    assert 'name="next" value="/?tab=brief"' in form.text
    r = client.post(
        "/login",
        data={
            "email": team.emails[Role.owner].upper(),  # emails are case-insensitive
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "/?tab=brief",
        },
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/?tab=brief")
    page = client.get("/")
    assert page.status_code == 200
    assert team.emails[Role.owner] in page.text
    # Logged in, the login page sends you on (never back to itself).
    r = client.get("/login?next=/costs", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/costs")
    for loop in ("/login", "/login?next=/login", "/logout"):
        r = client.get("/login", params={"next": loop}, follow_redirects=False)
        assert r.headers["location"] == "/", loop


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("owner", "wrong-password-123", "Adresse e-mail ou mot de passe incorrect."),
        ("nobody@example.com", PASSWORD, "Adresse e-mail ou mot de passe incorrect."),
        ("owner", "", "Saisissez votre adresse e-mail et votre mot de passe."),
    ],
)
def test_bad_logins_show_the_form_again(
    client: TestClient, team: Team, email: str, password: str, message: str
) -> None:
    address = team.emails[Role.owner] if email == "owner" else email
    r = log_in(client, address, password)
    assert r.status_code == 200
    assert message in r.text
    assert 'role="alert"' in r.text
    assert f'value="{address}"' in r.text  # the email stays, the password does not
    assert "runhq_session=" not in r.headers.get("set-cookie", "")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_session_cookie_flags_over_http(client: TestClient, runtime: Runtime, team: Team) -> None:
    r = log_in(client, team.emails[Role.viewer])
    attrs = _attrs(_set_cookie(r, "runhq_session"))
    assert "httponly" in attrs
    assert attrs["samesite"].lower() == "lax"
    assert attrs["path"] == "/"
    assert "secure" not in attrs  # plain http: a Secure cookie would never come back
    assert int(attrs["max-age"]) == runtime.settings.session_ttl_minutes * 60
    # The JWT is the credential: it resolves to the viewer.
    actor = auth.resolve_token(
        runtime.sessions(), attrs["value"], secret=runtime.settings.get_secret_key()
    )
    assert actor.user_id == team.viewer.user_id


def test_cookies_are_secure_over_https(make_client: Callable[..., TestClient], team: Team) -> None:
    client = make_client(base_url="https://testserver")
    form = client.get("/login")
    assert "secure" in _attrs(_set_cookie(form, "runhq_csrf"))
    r = client.post(
        "/login",
        data={
            "email": team.emails[Role.owner],
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
        },
        follow_redirects=False,
    )
    session_cookie = _attrs(_set_cookie(r, "runhq_session"))
    assert "secure" in session_cookie
    assert "httponly" in session_cookie
    assert session_cookie["samesite"].lower() == "lax"
    page = client.get("/")
    assert page.status_code == 200
    lang = client.post(
        "/lang", data={"lang": "en", "csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert "secure" in _attrs(_set_cookie(lang, "runhq_lang"))


def test_logout_clears_the_session(client: TestClient, team: Team) -> None:
    log_in(client, team.emails[Role.owner])
    page = client.get("/")
    r = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert _attrs(_set_cookie(r, "runhq_session"))["max-age"] == "0"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_logout_ends_the_session_not_only_the_cookie(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    """A copy of the cookie taken before logout (another tab, a stolen cookie) is dead too."""
    log_in(client, team.emails[Role.operator])
    stolen = client.cookies.get("runhq_session")
    assert stolen
    page = client.get("/")
    client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    client.cookies.set("runhq_session", stolen)
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    # Logging in again works at once.
    log_in(client, team.emails[Role.operator])
    assert client.get("/").status_code == 200


def test_logout_ends_this_browser_only_and_the_trust_page_ends_all(
    client: TestClient, team: Team
) -> None:
    def browser(cookie: str | None = None) -> str:
        """Switch to another browser: its session cookie, or a new login."""
        client.cookies.clear()
        if cookie is None:
            log_in(client, team.emails[Role.operator])
        else:
            client.cookies.set("runhq_session", cookie)
        value = client.cookies.get("runhq_session")
        assert value
        return value

    first, second = browser(), browser()
    assert first != second
    page = client.get("/")
    client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    browser(first)  # the other browser goes on
    trust = client.get("/trust")
    assert trust.status_code == 200
    assert 'name="everywhere" value="1"' in trust.text
    assert "Se déconnecter partout" in trust.text
    third = browser()
    r = client.post(
        "/logout",
        data={"csrf_token": csrf_of(client.get("/trust").text), "everywhere": "1"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    for cookie in (first, third):
        browser(cookie)
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_logout_without_a_session_just_goes_to_login(client: TestClient) -> None:
    r = client.post("/logout", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def test_a_dead_session_cookie_is_dropped(client: TestClient, team: Team) -> None:
    client.cookies.set("runhq_session", "not-a-jwt")
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    form = client.get("/login")
    assert form.status_code == 200
    assert _attrs(_set_cookie(form, "runhq_session"))["max-age"] == "0"


def test_an_api_key_is_not_a_session(client: TestClient, session: Session, team: Team) -> None:
    _, raw = auth.create_api_key(session, team.owner, name="ci")
    session.commit()
    client.cookies.set("runhq_session", raw)
    assert client.get("/", follow_redirects=False).status_code == 303


# -- CSRF ----------------------------------------------------------------------------------------


def test_login_without_a_csrf_token_is_refused(client: TestClient, team: Team) -> None:
    client.get("/login")  # the nonce cookie, but no token in the form
    r = client.post(
        "/login",
        data={"email": team.emails[Role.owner], "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "Formulaire expiré" in r.text
    assert "runhq_session=" not in r.headers.get("set-cookie", "")


def test_a_token_from_another_browser_is_refused(client: TestClient, team: Team) -> None:
    other = client.get("/login")
    token = csrf_of(other.text)
    client.cookies.clear()  # a second browser: its own nonce
    client.get("/login")
    r = log_in_with(client, team.emails[Role.owner], token)
    assert r.status_code == 403


def log_in_with(client: TestClient, email: str, token: str) -> object:
    return client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )


def test_posts_of_a_logged_in_visitor_need_their_token(client: TestClient, team: Team) -> None:
    anonymous_token = csrf_of(client.get("/login").text)
    log_in(client, team.emails[Role.owner])
    # No token, a wrong one, and the pre-login one: all refused, nothing changed.
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": anonymous_token}):
        r = client.post("/logout", data=data, follow_redirects=False)
        assert r.status_code == 403, data
        r = client.post("/lang", data={"lang": "en", **data}, follow_redirects=False)
        assert r.status_code == 403, data
        assert "runhq_lang" not in r.headers.get("set-cookie", "")
    assert client.get("/", follow_redirects=False).status_code == 200
    # The header HTMX sends is accepted in place of the form field.
    token = csrf_of(client.get("/").text)
    r = client.post("/logout", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert r.status_code == 303


def test_htmx_csrf_refusal_is_a_toast(client: TestClient, team: Team) -> None:
    log_in(client, team.emails[Role.owner])
    r = client.post("/lang", data={"lang": "en"}, headers={"HX-Request": "true"})
    assert r.status_code == 403
    assert r.headers["HX-Trigger"].startswith('{"runhq:toast": {"level": "error"')
    assert "Formulaire expir\\u00e9" in r.headers["HX-Trigger"]  # ASCII-safe JSON


# -- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
        "/ok\r\nSet-Cookie: x=1",
        "/" + "a" * 2100,
    ],
)
def test_safe_next_refuses_what_leaves_the_site(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/runs?status=failed", "/runs/123#log", "/a/b%2Fc"])
def test_safe_next_keeps_local_paths(target: str) -> None:
    assert safe_next(target) == target


def test_no_open_redirect_through_login_or_language(client: TestClient, team: Team) -> None:
    form = client.get("/login?next=https://evil.example/")
    assert 'name="next" value="/"' in form.text
    r = client.post(
        "/login",
        data={
            "email": team.emails[Role.owner],
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"
    token = csrf_of(client.get("/").text)
    r = client.post(
        "/lang",
        data={"lang": "en", "csrf_token": token, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"
    r = client.post(
        "/lang",
        data={"lang": "fr", "csrf_token": token},
        headers={"Referer": "https://evil.example/page"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"
    r = client.post(
        "/lang",
        data={"lang": "fr", "csrf_token": token},
        headers={"Referer": "http://testserver/runs?status=failed"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/runs?status=failed"


# -- roles ---------------------------------------------------------------------------------------


def test_can_follows_the_roles_the_services_enforce(
    client: TestClient, session: Session, runtime: Runtime, team: Team
) -> None:
    """The dashboard hides what a role cannot do; the services refuse it anyway."""
    from runhq.dashboard.session import BrowserSession

    def visit(role: Role) -> BrowserSession:
        actor = getattr(team, role.value)
        return BrowserSession(actor, "x@example.com", "fr", False, "k" * 32, "session:x")

    assert not visit(Role.viewer).can("run")
    with pytest.raises(PermissionDenied):
        runs.create_run(session, team.viewer, runtime.registry, run_type="CODE_REVIEW")
    assert visit(Role.operator).can("run")
    run, _ = runs.create_run(
        session, team.operator, runtime.registry, run_type="RELEASE_GATE_CHECK"
    )
    assert not visit(Role.admin).can("approve")
    with pytest.raises(PermissionDenied):
        runs.approve_run(session, team.admin, run.id, reason="looks fine")
    assert visit(Role.owner).can("approve")
    assert all(visit(Role.owner).can(action) for action in PERMISSIONS)
    assert not BrowserSession(None, None, "fr", False, "k" * 32, "anonymous:x").can("run")


def test_the_login_form_says_when_an_account_is_locked(
    client: TestClient, runtime: Runtime, team: Team
) -> None:
    email = team.emails[Role.owner]
    for _ in range(runtime.settings.login_max_failures):
        failed = log_in(client, email, "wrong-password-x")
        assert failed.status_code == 200
        assert "Adresse e-mail ou mot de passe incorrect." in failed.text
    locked = log_in(client, email)  # the right password, too late
    assert locked.status_code == 429
    assert "Trop de tentatives de connexion échouées. Réessayez dans 15\u00a0min." in locked.text
    assert "runhq_session" not in locked.cookies
