"""/api/v1/contacts and the public one-click unsubscribe endpoint."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import HTMLResponse, PlainTextResponse

from runhq.actions import campaigns
from runhq.actions.schemas import ContactIn, ContactOut, ContactPage, ImportResult
from runhq.web.deps import ActorDep, SessionDep
from runhq.web.errors import ERROR_RESPONSES

router = APIRouter(tags=["contacts"], responses=ERROR_RESPONSES)
public = APIRouter(tags=["contacts"])


@router.post(
    "/contacts",
    response_model=ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Add or update contacts (admin)",
)
def import_contacts(body: list[ContactIn], session: SessionDep, actor: ActorDep) -> ImportResult:
    written = campaigns.import_contacts(session, actor, [c.model_dump() for c in body])
    return ImportResult(
        written=written, audience=campaigns.count_audience(session, actor.workspace_id)
    )


@router.get("/contacts", response_model=ContactPage, summary="The contacts, newest first (admin)")
def list_contacts(
    session: SessionDep,
    actor: ActorDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ContactPage:
    rows, next_cursor = campaigns.list_contacts(session, actor, cursor=cursor, limit=limit)
    return ContactPage(items=[ContactOut.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.delete(
    "/contacts/{email}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a contact and its delivery records (admin)",
)
def delete_contact(email: str, session: SessionDep, actor: ActorDep) -> Response:
    campaigns.delete_contact(session, actor, email)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _unsubscribe(token: str, session: SessionDep) -> PlainTextResponse:
    if not campaigns.unsubscribe(session, token):
        return PlainTextResponse("Unknown link.", status_code=404)
    return PlainTextResponse("You are unsubscribed. / Vous êtes désinscrit(e).")


@public.post(
    "/unsubscribe/{token}",
    response_class=PlainTextResponse,
    summary="One-click unsubscribe (RFC 8058: POST List-Unsubscribe=One-Click)",
)
def unsubscribe_one_click(token: str, session: SessionDep) -> PlainTextResponse:
    return _unsubscribe(token, session)


@public.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    summary="The link in an email: a confirmation page (link scanners change nothing)",
)
def unsubscribe_link(token: str, session: SessionDep) -> HTMLResponse:
    if not campaigns.is_known_token(session, token):
        return HTMLResponse("<p>Unknown link.</p>", status_code=404)
    return HTMLResponse(
        '<!doctype html><html lang="fr"><meta charset="utf-8"><title>Désinscription</title>'
        f'<form method="post" action="/unsubscribe/{escape(token)}">'
        "<p>Ne plus recevoir nos emails ? / Stop receiving our emails?</p>"
        '<button type="submit">Se désinscrire / Unsubscribe</button></form></html>'
    )
