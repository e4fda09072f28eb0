"""/api/v1/auth: password login (OAuth2 password flow), the caller, API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from runhq.auth import service
from runhq.auth.models import User
from runhq.auth.schemas import ApiKeyCreated, ApiKeyOut, Me, Token
from runhq.errors import InvalidInput, NotAuthenticated
from runhq.web.deps import ActorDep, RuntimeDep, SessionDep, oauth2
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


@router.post("/token", response_model=Token, summary="Log in: email + password → JWT")
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
) -> Token:
    try:
        actor = service.log_in(
            session,
            email=form.username,
            password=form.password,
            address=service.client_address(request),
            throttle=service.get_login_throttle(runtime.settings),
        )
    except NotAuthenticated:
        session.commit()  # the failed attempt counts, although this request fails
        raise
    ttl = runtime.settings.jwt_ttl_minutes
    token = service.issue_token(
        session, actor, secret=runtime.settings.get_secret_key(), ttl_minutes=ttl
    )
    return Token(access_token=token, expires_in=ttl * 60)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out: this session, or with everywhere=true every session of yours",
)
def logout(
    session: SessionDep,
    actor: ActorDep,
    token: Annotated[str | None, Depends(oauth2)],
    everywhere: Annotated[
        bool,
        Query(
            description="End every JWT issued to you so far (other browsers, scripts' tokens), "
            "not only this one"
        ),
    ] = False,
) -> None:
    """Ends the caller's session: this JWT (and any copy of it) is refused from now on, your
    other sessions go on. With ``everywhere=true``, every JWT issued to your user before now
    stops working, the dashboard's included. API keys are not sessions: revoke one with
    ``DELETE /api/v1/auth/api-keys/{id}``."""
    if token and token.startswith(service.API_KEY_PREFIX):
        raise InvalidInput(
            "an API key is not a session: revoke it with DELETE /api/v1/auth/api-keys/{id}",
            details={"field": "Authorization"},
        )
    if everywhere:
        service.revoke_sessions(session, actor)
    else:
        service.end_session(session, actor)


@router.get("/me", response_model=Me, summary="Who am I")
def me(session: SessionDep, actor: ActorDep) -> Me:
    user = session.get(User, actor.user_id)
    workspace = service.get_workspace(session, actor.workspace_id)
    assert user is not None  # noqa: S101 - the actor was just resolved from this user
    return Me(
        user_id=user.id,
        email=user.email,
        workspace_id=workspace.id,
        workspace_name=workspace.name,
        role=actor.role,
    )


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once)",
)
def create_api_key(body: ApiKeyIn, session: SessionDep, actor: ActorDep) -> ApiKeyCreated:
    key, raw = service.create_api_key(session, actor, name=body.name)
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "key": raw})


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="Your API keys")
def list_api_keys(session: SessionDep, actor: ActorDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in service.list_api_keys(session, actor)]


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_api_key(key_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ApiKeyOut:
    return ApiKeyOut.model_validate(service.revoke_api_key(session, actor, key_id))
