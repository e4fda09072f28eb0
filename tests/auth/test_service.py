"""Auth service rules: emails, passwords, one owner flow."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.errors import AlreadyExists, InvalidInput, NotFound
from tests.conftest import Team


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
