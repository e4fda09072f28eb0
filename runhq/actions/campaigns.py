"""Contacts and email campaigns (MASS_EMAIL_CAMPAIGN's act phase); the only writer of
``contacts`` and ``campaign_deliveries``.

Never twice to one recipient: each delivery is marked ``sending`` and committed before the
message is handed to SMTP, and ``sent`` after. A crash between the two leaves ``sending``:
that recipient is not sent again (a lost email is a smaller harm than a duplicate, and the
run's result lists them). A retried run continues the same campaign (its first run's id).
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from runhq import clock
from runhq.actions.connectors.base import ActionFailed, ActionResult
from runhq.actions.connectors.email import SmtpConfig, SmtpSender, build_message
from runhq.actions.models import CampaignDelivery, Contact
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.auth.service import check_email, require_role
from runhq.config import Settings
from runhq.db.session import transaction
from runhq.errors import InvalidInput, NotFound
from runhq.pagination import fetch_page
from runhq.runs import service as runs
from runhq.runs.models import Run

_IMPORT_CHUNK = 500  # emails per lookup of the existing contacts


def import_contacts(session: Session, actor: Actor, rows: list[dict[str, Any]]) -> int:
    """Add or update contacts (email, name, consent); returns how many were written.

    Every row is checked before anything is written: a bad one is refused with its number
    (from 1) and nothing is kept. Existing contacts are looked up 500 emails at a time.
    """
    require_role(actor, Role.admin, "importing contacts")
    checked: list[tuple[str, str | None, bool]] = []
    for number, row in enumerate(rows, start=1):
        try:
            email = check_email(str(row.get("email", "")))
        except InvalidInput as exc:
            raise InvalidInput(
                f"row {number}: {exc.message}", details={"row": number, "field": "email"}
            ) from None
        checked.append((email, row.get("name") or None, bool(row.get("consent", False))))
    now = clock.now()
    known: dict[str, Contact] = {}
    emails = sorted({email for email, _, _ in checked})
    for start in range(0, len(emails), _IMPORT_CHUNK):
        chunk = emails[start : start + _IMPORT_CHUNK]
        for contact in session.scalars(
            select(Contact).where(
                Contact.workspace_id == actor.workspace_id, Contact.email.in_(chunk)
            )
        ):
            known[contact.email] = contact
    for email, name, consent in checked:
        found = known.get(email)
        if found is not None:
            contact = found
        else:
            contact = known[email] = Contact(
                workspace_id=actor.workspace_id,
                email=email,
                unsubscribe_token=secrets.token_urlsafe(24),
                created_at=now,
            )
            session.add(contact)
        contact.name = name or contact.name
        if consent and not contact.consent:
            contact.consented_at = now
        contact.consent = consent
    session.flush()
    return len(checked)


def list_contacts(
    session: Session, actor: Actor, *, cursor: str | None, limit: int
) -> tuple[list[Contact], str | None]:
    """The workspace's contacts, newest first (personal data: admins and owners)."""
    require_role(actor, Role.admin, "reading contacts")
    stmt = select(Contact).where(Contact.workspace_id == actor.workspace_id)
    return fetch_page(session, stmt, Contact.created_at, Contact.id, cursor=cursor, limit=limit)


def delete_contact(session: Session, actor: Actor, email: str) -> None:
    """Erase a contact (RGPD art. 17): the contact and its delivery records. Campaign totals
    then count only the deliveries that remain."""
    require_role(actor, Role.admin, "deleting a contact")
    email = check_email(email)
    contact = session.scalar(
        select(Contact).where(Contact.workspace_id == actor.workspace_id, Contact.email == email)
    )
    if contact is None:
        raise NotFound(f"no contact {email}")
    session.execute(delete(CampaignDelivery).where(CampaignDelivery.contact_id == contact.id))
    session.delete(contact)
    session.flush()


def count_audience(session: Session, workspace_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count(Contact.id)).where(
                Contact.workspace_id == workspace_id,
                Contact.consent.is_(True),
                Contact.unsubscribed_at.is_(None),
            )
        )
        or 0
    )


def unsubscribe(session: Session, token: str) -> bool:
    """One-click unsubscribe (RFC 8058); True if the token was known."""
    contact = session.scalar(select(Contact).where(Contact.unsubscribe_token == token))
    if contact is None:
        return False
    if contact.unsubscribed_at is None:
        contact.unsubscribed_at = clock.now()
    return True


def is_known_token(session: Session, token: str) -> bool:
    return session.scalar(select(Contact.id).where(Contact.unsubscribe_token == token)) is not None


def campaign_of(session: Session, run: Run) -> uuid.UUID:
    """The campaign a run belongs to: the first run of its retry chain."""
    root = run
    while root.parent_run_id is not None:
        parent = session.get(Run, root.parent_run_id)
        if parent is None:
            break
        root = parent
    return root.id


def _smtp(settings: Settings) -> tuple[SmtpConfig, ssl.SSLContext]:
    if not settings.smtp_host or not settings.smtp_sender:
        raise ActionFailed(
            "SMTP is not configured (RUNHQ_SMTP_HOST, RUNHQ_SMTP_SENDER)", retryable=False
        )
    if not settings.public_base_url.startswith("https://"):
        raise ActionFailed(
            "RUNHQ_PUBLIC_BASE_URL must be https: unsubscribe links must work in one click "
            "(RFC 8058)",
            retryable=False,
        )
    config = SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        sender=settings.smtp_sender,
    )
    context = ssl.create_default_context(
        cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    )
    return config, context


def _after_failure(exc: ActionFailed) -> str:
    """An SMTP refusal (a reply code) was not delivered: 4xx may be sent later, 5xx not.
    A dropped connection may have delivered it: it stays 'sending', never resent."""
    if exc.status_code is None:
        return "sending" if exc.retryable else "failed"
    return "pending" if exc.retryable else "failed"


def send_campaign(
    sessions: sessionmaker[Session], run_id: uuid.UUID, settings: Settings, *, batch: int = 50
) -> ActionResult:
    """Send the approved campaign of ``run_id`` to every consented contact not yet served.

    A task boundary: commits each delivery's state around its send.
    """
    config, context = _smtp(settings)
    with transaction(sessions) as session:
        run = session.get(Run, run_id)
        assert run is not None  # noqa: S101 - the engine holds it
        campaign_id = campaign_of(session, run)
        plan = run.plan or {}
        workspace_id = run.workspace_id
        claim_token = run.claim_token
        audience = select(Contact.id).where(
            Contact.workspace_id == workspace_id,
            Contact.consent.is_(True),
            Contact.unsubscribed_at.is_(None),
            Contact.id.not_in(
                select(CampaignDelivery.contact_id).where(
                    CampaignDelivery.campaign_id == campaign_id
                )
            ),
        )
        now = clock.now()
        for contact_id in session.scalars(audience).all():
            session.execute(
                insert(CampaignDelivery).values(
                    id=uuid.uuid4(),
                    workspace_id=workspace_id,
                    campaign_id=campaign_id,
                    run_id=run_id,
                    contact_id=contact_id,
                    status="pending",
                    created_at=now,
                )
            )
    subject = str(plan.get("subject") or (run.params or {}).get("subject") or "")
    text = str(plan.get("message") or "")
    sent = failed = 0
    stopped: str | None = None
    with SmtpSender(config, ssl_context=context) as sender:
        while stopped is None:
            with transaction(sessions) as session:
                rows = session.execute(
                    select(
                        CampaignDelivery.id, Contact.email, Contact.unsubscribe_token, Contact.id
                    )
                    .join(Contact, Contact.id == CampaignDelivery.contact_id)
                    .where(
                        CampaignDelivery.campaign_id == campaign_id,
                        CampaignDelivery.status == "pending",
                        Contact.unsubscribed_at.is_(None),
                    )
                    .limit(batch)
                ).all()
            if not rows:
                break
            for delivery_id, email, token, contact_id in rows:
                with transaction(sessions) as session:  # claimed before the send
                    # Before every message: an owner's cancel stops the campaign here (the
                    # rest stays pending), and a worker whose claim was lost sends no more.
                    stopped = runs.get_stop_reason(session, run_id, claim_token)
                    if stopped is not None:
                        break
                    claimed = session.execute(
                        update(CampaignDelivery)
                        .where(
                            CampaignDelivery.id == delivery_id, CampaignDelivery.status == "pending"
                        )
                        .values(status="sending", attempted_at=clock.now(), run_id=run_id)
                    ).rowcount  # type: ignore[attr-defined]
                if not claimed:
                    continue
                message = build_message(
                    sender=config.sender,
                    to=email,
                    subject=subject,
                    text=text,
                    unsubscribe_url=f"{settings.public_base_url.rstrip('/')}/unsubscribe/{token}",
                    campaign_id=str(campaign_id),
                    recipient_id=str(contact_id),
                )
                status, error = "sent", None
                try:
                    sender.send(message)
                except ActionFailed as exc:
                    status, error = _after_failure(exc), exc.reason
                with transaction(sessions) as session:
                    session.execute(
                        update(CampaignDelivery)
                        .where(CampaignDelivery.id == delivery_id)
                        .values(
                            status=status,
                            error=error,
                            sent_at=clock.now() if status == "sent" else None,
                        )
                    )
                if status == "sent":
                    sent += 1
                elif status == "failed":
                    failed += 1
                else:  # stop here; a retried run continues the campaign
                    what = "refused for now" if status == "pending" else "lost mid-message"
                    raise ActionFailed(f"SMTP {what}: {error}", retryable=True)
    with transaction(sessions) as session:
        rows_by_status = session.execute(
            select(CampaignDelivery.status, func.count(CampaignDelivery.id))
            .where(CampaignDelivery.campaign_id == campaign_id)
            .group_by(CampaignDelivery.status)
        ).all()
        totals: dict[str, int] = {str(st): int(n) for st, n in rows_by_status}
    if stopped is not None:
        return ActionResult(
            ok=False,
            summary=f"stopped ({stopped}) after {sent} emails sent by this run; campaign "
            f"totals {totals}",
            details={
                "campaign_id": str(campaign_id),
                "sent_by_this_run": sent,
                "failed_by_this_run": failed,
                "totals": totals,
                "stopped": stopped,
            },
        )
    return ActionResult(
        ok=failed == 0,
        summary=f"{sent} emails sent by this run; campaign totals {totals}",
        details={
            "campaign_id": str(campaign_id),
            "sent_by_this_run": sent,
            "failed_by_this_run": failed,
            "totals": totals,
        },
    )
