"""Auth shapes: the caller (Actor), tokens and API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from runhq.auth.models import Role

_ROLE_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2, Role.owner: 3}


@dataclass(frozen=True)
class LoginSession:
    """The login session behind a JWT: its ``sid`` claim and when the token expires."""

    id: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True)
class Actor:
    """Who is calling, in which workspace, with which role, and through what; ``session``:
    the login session of the caller's JWT (None for an API key or runhq's own processes)."""

    user_id: uuid.UUID
    workspace_id: uuid.UUID
    role: Role
    via: str = "api"
    session: LoginSession | None = None

    def has_at_least(self, role: Role) -> bool:
        return _ROLE_RANK[self.role] >= _ROLE_RANK[role]

    @property
    def person(self) -> uuid.UUID | None:
        """The user behind the call; None for runhq's own processes (scheduler, autopilot)."""
        return None if self.user_id == SYSTEM_USER else self.user_id


SYSTEM_USER = uuid.UUID(int=0)


def system_actor(workspace_id: uuid.UUID, via: str) -> Actor:
    """runhq acting on its own (scheduler, autopilot): may start runs, never approve them."""
    return Actor(user_id=SYSTEM_USER, workspace_id=workspace_id, role=Role.operator, via=via)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str


class MemberOut(BaseModel):
    """A user of the workspace, as an admin sees them."""

    user_id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class Me(BaseModel):
    user_id: uuid.UUID
    email: str
    workspace_id: uuid.UUID
    workspace_name: str
    role: Role
