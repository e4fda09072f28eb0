"""Users, workspaces, memberships (roles) and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runhq.db.base import Base, CreatedAtMixin, IdMixin


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class Workspace(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)


class User(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Carried by each JWT issued to this user; raised on logout everywhere, which ends every
    # session (browser and API tokens) issued before it; a single session's logout is an
    # EndedSession row. API keys are revoked one by one.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")


class Membership(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))


class ApiKey(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "api_keys"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailure(IdMixin, CreatedAtMixin, Base):
    """A failed password login, kept for the throttle's window (then purged): how many times
    an account, or an address, got its password wrong lately."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_created", "email", "created_at"),
        Index("ix_login_failures_address_created", "address", "created_at"),
    )

    # As typed (lower-cased), whether or not such a user exists.
    email: Mapped[str] = mapped_column(String(320))
    # The client's IP address as the server saw it.
    address: Mapped[str] = mapped_column(String(45))


class EndedSession(CreatedAtMixin, Base):
    """A login session ended by its own logout: the JWTs carrying this session id are refused
    until they would have expired anyway (then the row is purged). Logging out everywhere
    raises the user's ``session_epoch`` instead."""

    __tablename__ = "ended_sessions"

    # The ``sid`` claim of the session's JWT.
    session_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The token's own expiry: past it, the token is refused anyway and the row can go.
    expires_at: Mapped[datetime] = mapped_column(index=True)
