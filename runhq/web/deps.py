"""Request dependencies: the runtime, the request's unit of work, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from runhq.auth import service as auth
from runhq.auth.schemas import Actor
from runhq.db.session import transaction
from runhq.errors import NotAuthenticated
from runhq.runtime import Runtime

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    """The request's unit of work: committed when the handler succeeds, else rolled back."""
    with transaction(runtime.sessions) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a failed commit is
# an error response, never a 201 for something the database did not keep.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_actor(
    runtime: Annotated[Runtime, Depends(get_runtime)],
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2)],
) -> Actor:
    if not token:
        raise NotAuthenticated("missing bearer token: POST /api/v1/auth/token to get one")
    return auth.resolve_token(session, token, secret=runtime.settings.get_secret_key())


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ActorDep = Annotated[Actor, Depends(get_actor)]
