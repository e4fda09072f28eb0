"""The only writer of users, workspaces, memberships and API keys; verifies credentials."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Integer, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from starlette.requests import Request

from runhq import clock
from runhq.auth.models import (
    ApiKey,
    EndedSession,
    LoginFailure,
    Membership,
    Role,
    User,
    Workspace,
)
from runhq.auth.schemas import Actor, LoginSession, MemberOut
from runhq.config import Settings
from runhq.errors import (
    AlreadyExists,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooManyLoginAttempts,
)
from runhq.logs import service as logs
from runhq.logs.schemas import LogSource

_hasher = PasswordHasher()
_JWT_ALGORITHM = "HS256"
_JWT_ISSUER = "runhq"
API_KEY_PREFIX = "rhq_"
MIN_PASSWORD_LENGTH = 10
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A hash to verify against when the email is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 320:
        raise InvalidInput(f"{email!r} is not a valid email address", details={"field": "email"})
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters",
            details={"field": "password"},
        )


def create_workspace(session: Session, *, name: str, slug: str | None = None) -> Workspace:
    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "workspace"
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)):
        raise AlreadyExists(f"a workspace with slug {slug!r} already exists")
    workspace = Workspace(name=name, slug=slug, created_at=clock.now())
    session.add(workspace)
    session.flush()
    return workspace


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    workspace_id: uuid.UUID,
    role: Role,
    display_name: str | None = None,
) -> User:
    """Create a user with a role in a workspace (the email must be new)."""
    email = check_email(email)
    check_password(password)
    if session.scalar(select(User.id).where(User.email == email)):
        raise AlreadyExists(f"a user with email {email!r} already exists")
    user = User(
        email=email,
        password_hash=_hasher.hash(password),
        display_name=display_name,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    session.add(
        Membership(workspace_id=workspace_id, user_id=user.id, role=role, created_at=clock.now())
    )
    session.flush()
    return user


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def list_member_emails(
    session: Session, workspace_id: uuid.UUID, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The email of each of ``user_ids`` who is a member of the workspace (one query)."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(User.id, User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id, User.id.in_(set(user_ids)))
    ).all()
    return {user_id: email for user_id, email in rows}


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def get_membership(session: Session, user_id: uuid.UUID) -> Membership | None:
    """The user's membership (one workspace per user in this version: the oldest)."""
    return session.scalar(
        select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)
    )


def authenticate(session: Session, *, email: str, password: str) -> Actor:
    """Check a password login; one error for 'no such user' and 'wrong password'."""
    user = get_user_by_email(session, email)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise NotAuthenticated("incorrect email or password") from None
    if user is None or not user.is_active:
        raise NotAuthenticated("incorrect email or password")
    membership = get_membership(session, user.id)
    if membership is None:
        raise PermissionDenied("this user belongs to no workspace")
    return Actor(user_id=user.id, workspace_id=membership.workspace_id, role=Role(membership.role))


@dataclass(frozen=True)
class LoginThrottle:
    """How many failed logins an email, or an address, may have within ``window``."""

    max_failures: int
    max_per_address: int
    window: timedelta


def get_login_throttle(settings: Settings) -> LoginThrottle:
    return LoginThrottle(
        max_failures=settings.login_max_failures,
        max_per_address=settings.login_max_failures_per_address,
        window=timedelta(minutes=settings.login_window_minutes),
    )


def client_address(request: Request) -> str:
    """The caller's IP address as the server sees it (behind a proxy, run uvicorn with
    --proxy-headers so that this is the client's, not the proxy's)."""
    return request.client.host if request.client else "unknown"


_RECENT_BY_EMAIL = (
    select(LoginFailure.created_at)
    .where(LoginFailure.email == bindparam("key"), LoginFailure.created_at >= bindparam("since"))
    .order_by(LoginFailure.created_at.desc())
    .limit(bindparam("limit", type_=Integer))
)
_RECENT_BY_ADDRESS = (
    select(LoginFailure.created_at)
    .where(LoginFailure.address == bindparam("key"), LoginFailure.created_at >= bindparam("since"))
    .order_by(LoginFailure.created_at.desc())
    .limit(bindparam("limit", type_=Integer))
)


def check_login_throttle(
    session: Session, *, email: str, address: str, throttle: LoginThrottle
) -> None:
    """Refuse (429) a login for an email, or from an address, that failed too often lately,
    before the password is even looked at."""
    now = clock.now()
    since = now - throttle.window
    for stmt, key, limit, who in (
        (_RECENT_BY_EMAIL, email.strip().lower(), throttle.max_failures, "this account"),
        (_RECENT_BY_ADDRESS, address, throttle.max_per_address, "this address"),
    ):
        recent = session.scalars(stmt, {"key": key, "since": since, "limit": limit}).all()
        if len(recent) >= limit:
            # Allowed again once the oldest of these failures leaves the window.
            wait = max(1, math.ceil((recent[-1] + throttle.window - now).total_seconds()))
            raise TooManyLoginAttempts(
                f"too many failed logins for {who}: try again in {_minutes(wait)}",
                details={"retry_after_seconds": wait},
            )


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def log_in(
    session: Session, *, email: str, password: str, address: str, throttle: LoginThrottle
) -> Actor:
    """A password login through the throttle; a wrong password is recorded (the caller's
    boundary must keep that record even though the login fails: commit, then raise)."""
    check_login_throttle(session, email=email, address=address, throttle=throttle)
    try:
        return authenticate(session, email=email, password=password)
    except NotAuthenticated:
        session.add(
            LoginFailure(
                email=email.strip().lower()[:320], address=address[:45], created_at=clock.now()
            )
        )
        raise


def purge_login_failures(session: Session, *, older_than: timedelta) -> int:
    """Forget failed logins the throttle no longer counts (they name people's emails)."""
    result = session.execute(
        delete(LoginFailure).where(LoginFailure.created_at < clock.now() - older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def issue_token(session: Session, actor: Actor, *, secret: str, ttl_minutes: int) -> str:
    """A JWT for ``actor``, a login session of its own: valid ``ttl_minutes``, or until this
    session logs out, or the user logs out everywhere."""
    now = clock.now()
    epoch = session.scalar(select(User.session_epoch).where(User.id == actor.user_id))
    claims = {
        "sub": str(actor.user_id),
        "ws": str(actor.workspace_id),
        "iss": _JWT_ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=ttl_minutes)).timestamp()),
        "se": int(epoch or 0),
        "sid": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=_JWT_ALGORITHM)


def resolve_token(session: Session, token: str, *, secret: str) -> Actor:
    """The caller behind a bearer value: an API key (``rhq_…``) or a JWT."""
    if token.startswith(API_KEY_PREFIX):
        return _resolve_api_key(session, token)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_JWT_ALGORITHM],
            issuer=_JWT_ISSUER,
            # PyJWT would compare exp with the wall clock; we compare with runhq's clock below.
            options={"require": ["exp", "sub", "ws", "iat"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise NotAuthenticated("invalid token") from None
    if int(claims["exp"]) <= int(clock.now().timestamp()):
        raise NotAuthenticated("token expired: log in again")
    epoch = claims.get("se", 0)  # tokens issued before logouts existed carry none
    sid = claims.get("sid")  # tokens issued before per-session logout carry none
    try:
        user_id, workspace_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["ws"])
        login = None
        if sid is not None:
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            login = LoginSession(id=uuid.UUID(hex=sid), expires_at=expires)
    except (ValueError, TypeError, AttributeError):
        raise NotAuthenticated("invalid token") from None
    if not isinstance(epoch, int):
        raise NotAuthenticated("invalid token")
    return _actor_for(session, user_id, workspace_id, session_epoch=epoch, login=login)


def _actor_for(
    session: Session,
    user_id: uuid.UUID,
    workspace_id: uuid.UUID,
    *,
    session_epoch: int | None = None,
    login: LoginSession | None = None,
) -> Actor:
    """The member's actor. A JWT's ``session_epoch`` is refused once the user logged out
    everywhere, its ``login`` session once it logged out (one query either way)."""
    ended = (
        select(EndedSession.session_id).where(EndedSession.session_id == login.id).exists()
        if login is not None
        else literal(False)
    )
    row = session.execute(
        select(Membership.role, User.is_active, User.session_epoch, ended.label("ended"))
        .join(User, User.id == Membership.user_id)
        .where(Membership.user_id == user_id, Membership.workspace_id == workspace_id)
    ).first()
    if row is None or not row.is_active:
        raise NotAuthenticated("this account no longer has access")
    if (session_epoch is not None and session_epoch != row.session_epoch) or row.ended:
        raise NotAuthenticated("this session ended (logged out): log in again")
    return Actor(user_id=user_id, workspace_id=workspace_id, role=Role(row.role), session=login)


def end_session(session: Session, actor: Actor) -> None:
    """Log the caller's own session out: its JWT (and any copy of it) is refused from now on;
    their other sessions — another browser, a script's token — go on."""
    if actor.session is None:
        raise InvalidInput(
            "this credential is not a login session (an API key, or a token issued before "
            "per-session logout): revoke the key, or log out everywhere",
            details={"field": "Authorization"},
        )
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    ended = (
        insert(EndedSession)
        .values(
            session_id=actor.session.id,
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            expires_at=actor.session.expires_at,
            created_at=clock.now(),
        )
        # Two logouts of one session at once (a double click) both passed authentication:
        # the second finds it ended already, and is done, without a second log line.
        .on_conflict_do_nothing(index_elements=["session_id"])
        .execution_options(preserve_rowcount=True)
    )
    if session.execute(ended).rowcount == 1:  # type: ignore[attr-defined]
        _log_logged_out(session, actor, actor.user_id, scope="session")


def purge_ended_sessions(session: Session) -> int:
    """Forget logged-out sessions whose tokens have expired anyway: how many."""
    result = session.execute(delete(EndedSession).where(EndedSession.expires_at <= clock.now()))
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_sessions(session: Session, actor: Actor, user_id: uuid.UUID | None = None) -> None:
    """Log a user out everywhere: every JWT issued to them so far stops working (browser
    sessions and API tokens alike; API keys are revoked one by one). Yourself by default;
    another member of your workspace as an admin (an owner's sessions: an owner only).
    ``end_session`` ends only the caller's own session."""
    target = user_id or actor.user_id
    if target != actor.user_id:
        _check_manages(session, actor, target, "ending another user's sessions")
    _bump_session_epoch(session, target)
    _log_logged_out(session, actor, target, scope="everywhere")


def _log_logged_out(session: Session, actor: Actor, user_id: uuid.UUID, *, scope: str) -> None:
    logs.create_log(
        session,
        message="auth.logged_out",
        source=LogSource.system,
        workspace_id=actor.workspace_id,
        metadata={
            "user_id": str(user_id),
            "by": str(actor.user_id),
            "via": actor.via,
            "scope": scope,
        },
    )


def _bump_session_epoch(session: Session, user_id: uuid.UUID) -> None:
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_epoch=User.session_epoch + 1)
        .execution_options(synchronize_session=False)
    )


def _check_manages(session: Session, actor: Actor, user_id: uuid.UUID, action: str) -> Role:
    """``actor`` may manage member ``user_id`` (admin; owner for an owner): their role."""
    require_role(actor, Role.admin, action)
    role = session.scalar(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.workspace_id == actor.workspace_id
        )
    )
    if role is None:
        raise NotFound(f"no user {user_id} in this workspace")
    if role == Role.owner.value:
        require_role(actor, Role.owner, f"{action} (of an owner)")
    return Role(role)


def list_members(session: Session, actor: Actor) -> list[MemberOut]:
    """The workspace's users, oldest first (admins and owners)."""
    require_role(actor, Role.admin, "listing users")
    rows = session.execute(
        select(User.id, User.email, Membership.role, User.is_active, User.created_at)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == actor.workspace_id)
        .order_by(User.created_at, User.email)
    ).all()
    return [
        MemberOut(
            user_id=r.id,
            email=r.email,
            role=Role(r.role),
            is_active=r.is_active,
            created_at=r.created_at,
        )
        for r in rows
    ]


def get_member_by_email(session: Session, actor: Actor, email: str) -> uuid.UUID:
    """The id of the member of ``actor``'s workspace with this email (404 if none)."""
    user_id = session.scalar(
        select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(User.email == email.strip().lower(), Membership.workspace_id == actor.workspace_id)
    )
    if user_id is None:
        raise NotFound(f"no user {email!r} in this workspace")
    return user_id


def update_user_active(session: Session, actor: Actor, user_id: uuid.UUID, *, active: bool) -> int:
    """Deactivate a member (they can no longer log in; their sessions end and their API keys
    are revoked, so that activating them again brings back neither) or activate them again.
    Not yourself; never the last active owner. Returns how many API keys were revoked."""
    verb = "activating" if active else "deactivating"
    role = _check_manages(session, actor, user_id, f"{verb} a user")
    if user_id == actor.user_id:
        raise InvalidInput(f"you cannot {'activate' if active else 'deactivate'} yourself")
    if not active and role == Role.owner and _active_owners(session, actor.workspace_id) <= 1:
        raise InvalidInput("the workspace's last active owner cannot be deactivated")
    user = get_user(session, user_id)
    if user.is_active == active:
        return 0
    user.is_active = active
    session.flush()
    metadata: dict[str, Any] = {"user_id": str(user_id), "by": str(actor.user_id), "via": actor.via}
    revoked = 0
    if not active:
        _bump_session_epoch(session, user_id)
        revoked = metadata["api_keys_revoked"] = _revoke_api_keys_of(session, user_id)
    logs.create_log(
        session,
        message="auth.user_activated" if active else "auth.user_deactivated",
        source=LogSource.system,
        workspace_id=actor.workspace_id,
        metadata=metadata,
    )
    return revoked


def _revoke_api_keys_of(session: Session, user_id: uuid.UUID) -> int:
    """Revoke every live API key of ``user_id`` (in all their workspaces: the account is
    what was deactivated); how many."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _active_owners(session: Session, workspace_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.workspace_id == workspace_id,
                Membership.role == Role.owner.value,
                User.is_active.is_(True),
            )
        )
        or 0
    )


def _hash_key(raw: str) -> str:
    # API keys are 256-bit random: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_key(session: Session, actor: Actor, *, name: str) -> tuple[ApiKey, str]:
    """Create a key for the caller; the raw key is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("name must be 1 to 100 characters", details={"field": "name"})
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        workspace_id=actor.workspace_id,
        user_id=actor.user_id,
        name=name,
        prefix=raw[:12],
        key_hash=_hash_key(raw),
        created_at=clock.now(),
    )
    session.add(key)
    session.flush()
    return key, raw


def list_api_keys(session: Session, actor: Actor) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.workspace_id == actor.workspace_id, ApiKey.user_id == actor.user_id)
            .order_by(ApiKey.created_at.desc())
        )
    )


def revoke_api_key(session: Session, actor: Actor, key_id: uuid.UUID) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.workspace_id != actor.workspace_id or key.user_id != actor.user_id:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    return key


def _resolve_api_key(session: Session, raw: str) -> Actor:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash_key(raw)))
    if key is None or key.revoked_at is not None:
        raise NotAuthenticated("invalid or revoked API key")
    key.last_used_at = clock.now()
    actor = _actor_for(session, key.user_id, key.workspace_id)
    return Actor(user_id=actor.user_id, workspace_id=actor.workspace_id, role=actor.role, via="api")


def require_role(actor: Actor, role: Role, action: str) -> None:
    """403 unless the caller has at least ``role``."""
    if not actor.has_at_least(role):
        raise PermissionDenied(
            f"{action} requires the {role.value} role (you are {actor.role})",
            details={"required_role": role.value, "role": str(actor.role)},
        )


def get_workspace(session: Session, workspace_id: uuid.UUID) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace {workspace_id}")
    return workspace


def get_default_owner(session: Session, workspace_slug: str | None = None) -> Actor:
    """The owner acting for local CLI commands (whoever can read the database is trusted)."""
    stmt = (
        select(Membership)
        .join(Workspace, Workspace.id == Membership.workspace_id)
        .where(Membership.role == Role.owner.value)
        .order_by(Workspace.created_at, Membership.created_at)
    )
    if workspace_slug:
        stmt = stmt.where(Workspace.slug == workspace_slug)
    membership = session.scalar(stmt)
    if membership is None:
        raise NotFound("no workspace owner yet: run `runhq init` first")
    return Actor(
        user_id=membership.user_id,
        workspace_id=membership.workspace_id,
        role=Role.owner,
        via="cli",
    )
