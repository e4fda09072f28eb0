"""Auth service rules: emails, passwords, one owner flow."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from runhq import clock
from runhq.auth import service as auth
from runhq.auth.models import ApiKey, EndedSession, Role, User
from runhq.auth.schemas import Actor, LoginSession
from runhq.errors import (
    AlreadyExists,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from runhq.logs.models import StructuredLog
from tests.conftest import Team, make_team


def test_user_rules(session: Session, team: Team) -> None:
    with pytest.raises(InvalidInput, match="email"):
        auth.create_user(
            session,
            email="not-an-email",
            password="x" * 12,
            workspace_id=team.workspace_id,
            role=Role.viewer,
        )
    with pytest.raises(InvalidInput, match="10 characters"):
        auth.create_user(
            session,
            email="a@b.example.com",
            password="short",
            workspace_id=team.workspace_id,
            role=Role.viewer,
        )
    with pytest.raises(AlreadyExists):
        auth.create_user(
            session,
            email=team.emails[Role.owner].upper(),
            password="x" * 12,
            workspace_id=team.workspace_id,
            role=Role.viewer,
        )


def test_default_owner(session: Session, team: Team) -> None:
    assert auth.get_default_owner(session).role == Role.owner
    with pytest.raises(NotFound, match="runhq init"):
        auth.get_default_owner(session, workspace_slug="no-such-workspace")


def test_roles_are_ordered(team: Team) -> None:
    assert team.owner.has_at_least(Role.admin)
    assert team.admin.has_at_least(Role.operator)
    assert not team.operator.has_at_least(Role.admin)
    assert not team.viewer.has_at_least(Role.operator)


def _epoch(session: Session, user_id: object) -> int:
    return int(session.scalar(select(User.session_epoch).where(User.id == user_id)) or 0)


def test_who_may_end_whose_sessions(session: Session, team: Team) -> None:
    before = _epoch(session, team.viewer.user_id)
    auth.revoke_sessions(session, team.viewer)  # anyone, their own
    assert _epoch(session, team.viewer.user_id) == before + 1
    auth.revoke_sessions(session, team.admin, team.operator.user_id)
    assert _epoch(session, team.operator.user_id) == 1
    with pytest.raises(PermissionDenied, match="admin"):
        auth.revoke_sessions(session, team.operator, team.viewer.user_id)
    with pytest.raises(PermissionDenied, match="owner"):
        auth.revoke_sessions(session, team.admin, team.owner.user_id)
    other = make_team(session)
    with pytest.raises(NotFound, match="in this workspace"):
        auth.revoke_sessions(session, team.owner, other.viewer.user_id)
    assert _epoch(session, other.viewer.user_id) == 0


def test_deactivating_members(session: Session, team: Team) -> None:
    auth.update_user_active(session, team.admin, team.viewer.user_id, active=False)
    assert auth.get_user(session, team.viewer.user_id).is_active is False
    assert _epoch(session, team.viewer.user_id) == 1
    auth.update_user_active(session, team.admin, team.viewer.user_id, active=False)  # no-op
    assert _epoch(session, team.viewer.user_id) == 1
    with pytest.raises(InvalidInput, match="yourself"):
        auth.update_user_active(session, team.admin, team.admin.user_id, active=False)
    with pytest.raises(PermissionDenied, match="owner"):
        auth.update_user_active(session, team.admin, team.owner.user_id, active=False)
    with pytest.raises(PermissionDenied, match="admin"):
        auth.update_user_active(session, team.operator, team.viewer.user_id, active=True)
    # A second owner may be deactivated by the first, never the last active one.
    second = auth.create_user(
        session,
        email="second-owner@example.com",
        password="x" * 12,
        workspace_id=team.workspace_id,
        role=Role.owner,
    )
    auth.update_user_active(session, team.owner, second.id, active=False)
    with pytest.raises(InvalidInput, match="last active owner"):
        auth.update_user_active(
            session,
            Actor(user_id=second.id, workspace_id=team.workspace_id, role=Role.owner),
            team.owner.user_id,
            active=False,
        )
    assert [m.email for m in auth.list_members(session, team.admin) if not m.is_active] == [
        team.emails[Role.viewer],
        "second-owner@example.com",
    ]
    with pytest.raises(PermissionDenied, match="admin"):
        auth.list_members(session, team.operator)


def test_deactivating_revokes_api_keys_for_good(session: Session, team: Team) -> None:
    _, first = auth.create_api_key(session, team.viewer, name="script")
    _, second = auth.create_api_key(session, team.viewer, name="other")
    auth.revoke_api_key(
        session, team.viewer, auth.create_api_key(session, team.viewer, name="old")[0].id
    )
    _, admins = auth.create_api_key(session, team.admin, name="admin's")
    session.flush()
    assert auth.update_user_active(session, team.admin, team.viewer.user_id, active=False) == 2
    assert auth.update_user_active(session, team.admin, team.viewer.user_id, active=True) == 0
    for raw in (first, second):  # the account is back; its old keys are not
        with pytest.raises(NotAuthenticated, match="revoked"):
            auth.resolve_token(session, raw, secret="s" * 40)
    assert auth.resolve_token(session, admins, secret="s" * 40).user_id == team.admin.user_id
    keys = session.scalars(select(ApiKey).where(ApiKey.user_id == team.viewer.user_id)).all()
    assert len(keys) == 3
    assert all(k.revoked_at is not None for k in keys)
    line = session.scalar(
        select(StructuredLog.meta).where(StructuredLog.message == "auth.user_deactivated")
    )
    assert line is not None
    assert line["api_keys_revoked"] == 2


def test_two_logouts_of_one_session_at_once_end_it_once(session: Session, team: Team) -> None:
    # Both requests passed authentication before either committed (a double click): the
    # second finds the session ended already, with no error and no second log line.
    login = LoginSession(id=uuid.uuid4(), expires_at=clock.now() + timedelta(hours=1))
    actor = replace(team.operator, session=login)
    auth.end_session(session, actor)
    auth.end_session(session, actor)
    ended = session.scalars(select(EndedSession.session_id)).all()
    assert ended == [login.id]
    lines = session.scalars(
        select(StructuredLog.id).where(StructuredLog.message == "auth.logged_out")
    ).all()
    assert len(lines) == 1
