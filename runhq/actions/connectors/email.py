"""Campaign email over SMTP: one personal message per recipient, one-click unsubscribe.

:func:`build_message` makes the message of one recipient:

- ``List-Unsubscribe: <https://…>`` (RFC 2369: the URI in angle brackets) and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058: the mailbox provider may
  POST ``List-Unsubscribe=One-Click`` to that HTTPS URI, without cookies or credentials, so the
  URI itself must identify the recipient and list — an opaque token). RFC 8058 also requires a
  DKIM signature covering both headers: that is the sending relay's job (configure it to sign
  ``List-Unsubscribe`` and ``List-Unsubscribe-Post``), mail without it gets no one-click button;
- a ``Message-ID`` derived from the campaign and recipient ids only, so that a resend of the same
  campaign to the same person carries the same id and is recognisable (and deduplicated by many
  mailbox providers);
- the unsubscribe link at the end of the text, for readers whose client shows no button.

:class:`SmtpSender` holds one SMTP connection (EHLO, STARTTLS with certificate verification,
AUTH when a username is configured) and sends messages one by one. ``send`` raises
:class:`ActionFailed` for that recipient only: retryable for 4xx replies and lost connections,
not for 5xx replies. When the server dropped the connection before accepting the recipient
(idle timeout, ``421``), it reconnects once and sends again — nothing was delivered then. A
connection lost *during* DATA is never resent automatically: the message may have been
delivered, and the caller decides.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from types import TracebackType
from urllib.parse import urlsplit

from runhq.actions.connectors.base import ActionFailed, clip, redact

__all__ = ["SmtpConfig", "SmtpSender", "build_message", "message_id"]

ONE_CLICK = "List-Unsubscribe=One-Click"
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DROPPED = 421


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    """Where and how to submit mail. ``sender`` is the envelope sender (bounces go there)."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    starttls: bool = True
    timeout: float = 10.0
    sender: str
    #: Name announced in EHLO; None: this machine's fully qualified domain name.
    local_hostname: str | None = None


def message_id(*, campaign_id: str, recipient_id: str, domain: str) -> str:
    """``<runhq.<campaign>.<recipient>@<domain>>``, the same for every send of that pair.

    Ids outside ``[A-Za-z0-9_-]`` (or longer than 64 characters) are replaced by a hash.
    """
    return f"<runhq.{_id_part(campaign_id)}.{_id_part(recipient_id)}@{domain}>"


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    unsubscribe_url: str,
    campaign_id: str,
    recipient_id: str,
    date: datetime | None = None,
) -> EmailMessage:
    """The message of one campaign to one recipient (see the module docstring).

    ``unsubscribe_url`` must be an absolute ``https`` URL without spaces, commas or angle
    brackets (RFC 8058 requires HTTPS for one-click). ``date``, when given, must be aware.
    """
    for name, value in (("sender", sender), ("to", to), ("subject", subject)):
        if "\r" in value or "\n" in value:
            raise ValueError(f"{name} must be a single line")
    domain = _domain_of(sender, "sender")
    _domain_of(to, "to")
    _check_unsubscribe_url(unsubscribe_url)
    if not campaign_id or not recipient_id:
        raise ValueError("campaign_id and recipient_id are required")

    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if date is not None:
        if date.tzinfo is None:
            raise ValueError("date must be timezone-aware")
        message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id(
        campaign_id=campaign_id, recipient_id=recipient_id, domain=domain
    )
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = ONE_CLICK
    body = text.rstrip() + f"\n\n-- \nUnsubscribe: {unsubscribe_url}\n"
    message.set_content(body, charset="utf-8")
    return message


class SmtpSender:
    """One SMTP session: ``with SmtpSender(config) as smtp: smtp.send(message)``.

    ``ssl_context`` verifies the server's certificate during STARTTLS (default: the system's
    trust store with hostname checking). A username without STARTTLS is refused: the password
    is never sent in clear.
    """

    def __init__(self, config: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None) -> None:
        if config.username is not None and config.password is None:
            raise ValueError("an SMTP username needs a password")
        self._config = config
        self._ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None
        self._where = f"the SMTP server {config.host}:{config.port}"

    def __enter__(self) -> SmtpSender:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- connection ----------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the session (EHLO, STARTTLS, AUTH); raise :class:`ActionFailed` if it fails."""
        self.close()
        self._smtp = self._open()

    def _open(self) -> smtplib.SMTP:
        config = self._config
        try:
            smtp = smtplib.SMTP(
                config.host,
                config.port,
                local_hostname=config.local_hostname,
                timeout=config.timeout,
            )
        except smtplib.SMTPResponseException as exc:
            raise self._reply_failure("greeted us with", exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ActionFailed(
                f"could not connect to {self._where}: {self._detail(exc)}", retryable=True
            ) from None
        try:
            self._open_session(smtp)
        except BaseException:
            _close_quietly(smtp)
            raise
        return smtp

    def close(self) -> None:
        """End the session politely (QUIT), ignoring a connection that is already gone."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        _close_quietly(smtp)

    def _open_session(self, smtp: smtplib.SMTP) -> None:
        config = self._config
        try:
            code, reply = smtp.ehlo()
            if not 200 <= code < 300:
                raise self._reply_failure("refused EHLO with", code, reply)
            if config.starttls:
                if not smtp.has_extn("starttls"):
                    raise ActionFailed(
                        f"{self._where} does not offer STARTTLS; refusing to continue without "
                        f"encryption",
                        retryable=False,
                    )
                context = self._ssl_context or ssl.create_default_context()
                code, reply = smtp.starttls(context=context)
                if code != 220:
                    raise self._reply_failure("refused STARTTLS with", code, reply)
                code, reply = smtp.ehlo()
                if not 200 <= code < 300:
                    raise self._reply_failure("refused EHLO after STARTTLS with", code, reply)
            if config.username is not None:
                if not config.starttls:
                    raise ActionFailed(
                        f"refusing to send the SMTP password to {self._where} without STARTTLS",
                        retryable=False,
                    )
                try:
                    smtp.login(config.username, config.password or "")
                except smtplib.SMTPException as exc:
                    if type(exc) is not smtplib.SMTPException:
                        raise
                    # "No suitable authentication method found."
                    raise ActionFailed(
                        f"{self._where} cannot authenticate us: {self._detail(exc)}",
                        retryable=False,
                    ) from None
        except ActionFailed:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise self._reply_failure(
                "refused the credentials with", exc.smtp_code, exc.smtp_error
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ActionFailed(
                f"{self._where} cannot authenticate us: {self._detail(exc)}", retryable=False
            ) from None
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or "certificate verification failed"
            raise ActionFailed(
                f"{self._where} presented a TLS certificate we do not trust ({reason})",
                retryable=False,
            ) from None
        except ssl.SSLError as exc:
            raise ActionFailed(
                f"TLS negotiation with {self._where} failed: {self._detail(exc)}",
                retryable=False,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise self._reply_failure("answered", exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ActionFailed(
                f"the connection to {self._where} failed while opening the session: "
                f"{self._detail(exc)}",
                retryable=True,
            ) from None

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: EmailMessage) -> None:
        """Submit ``message`` to its single ``To`` recipient, or raise :class:`ActionFailed`."""
        recipient = _single_recipient(message)
        if not recipient.isascii():
            raise ActionFailed(
                f"cannot send to {recipient}: non-ASCII addresses are not supported",
                retryable=False,
            )
        payload = message.as_bytes(policy=policy.SMTP)
        for attempt in (1, 2):
            smtp = self._smtp
            if smtp is None:
                smtp = self._smtp = self._open()
            try:
                self._transaction(smtp, recipient, payload, message.get("Message-ID"))
                return
            except _Dropped:
                _close_quietly(smtp)
                self._smtp = None
                if attempt == 2:
                    raise ActionFailed(
                        f"{self._where} dropped the connection twice before accepting "
                        f"{recipient}; nothing was delivered",
                        retryable=True,
                    ) from None

    def _transaction(
        self, smtp: smtplib.SMTP, recipient: str, payload: bytes, msg_id: str | None
    ) -> None:
        try:
            code, reply = smtp.mail(self._config.sender)
        except smtplib.SMTPServerDisconnected:
            raise _Dropped from None
        if code == _DROPPED:
            raise _Dropped
        if code != 250:
            _reset(smtp)
            raise self._reply_failure(f"refused the sender {self._config.sender} with", code, reply)

        try:
            code, reply = smtp.rcpt(recipient)
        except smtplib.SMTPServerDisconnected:
            raise _Dropped from None
        if code == _DROPPED:
            raise _Dropped
        if code not in (250, 251):
            _reset(smtp)
            raise self._reply_failure(f"refused the recipient {recipient} with", code, reply)

        try:
            code, reply = smtp.data(payload)
        except smtplib.SMTPDataError as exc:
            # Answered to the DATA command itself: no content was sent.
            _reset(smtp)
            raise self._reply_failure(
                f"refused the message to {recipient} with", exc.smtp_code, exc.smtp_error
            ) from None
        except (smtplib.SMTPServerDisconnected, OSError):
            _close_quietly(smtp)
            self._smtp = None
            raise ActionFailed(
                f"the connection to {self._where} was lost while sending the message to "
                f"{recipient}; it may or may not have been delivered (Message-ID {msg_id})",
                retryable=True,
            ) from None
        if code != 250:
            _reset(smtp)
            raise self._reply_failure(f"did not accept the message to {recipient}:", code, reply)

    # -- helpers -------------------------------------------------------------------------------

    def _reply_failure(self, doing: str, code: int, reply: bytes | str) -> ActionFailed:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        text = redact(clip(text), [self._config.password])
        return ActionFailed(
            f"{self._where} {doing} {code} {text}".rstrip(),
            retryable=400 <= code < 500,
            status_code=code,
        )

    def _detail(self, exc: BaseException) -> str:
        return redact(clip(str(exc) or type(exc).__name__), [self._config.password])


class _Dropped(Exception):
    """Internal: the server closed the session before the recipient was accepted."""


def _reset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except (OSError, smtplib.SMTPException):
        pass


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


def _single_recipient(message: EmailMessage) -> str:
    if message.get_all("Cc") or message.get_all("Bcc"):
        raise ValueError("campaign messages go to one recipient (no Cc or Bcc)")
    addresses = [address for _, address in getaddresses(message.get_all("To", []))]
    if len(addresses) != 1 or "@" not in addresses[0]:
        raise ValueError("a campaign message needs exactly one To address")
    return addresses[0]


def _domain_of(address: str, name: str) -> str:
    _, email_address = parseaddr(address)
    local, at, domain = email_address.rpartition("@")
    if not at or not local or not domain or "." not in domain:
        raise ValueError(f"{name} must be an email address")
    return domain.lower()


def _check_unsubscribe_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError("unsubscribe_url must be an absolute https URL (RFC 8058)")
    if any(char.isspace() or char in '<>,"' for char in url) or not url.isascii():
        raise ValueError("unsubscribe_url must not contain spaces, commas, quotes or brackets")


def _id_part(value: str) -> str:
    if _SAFE_ID.fullmatch(value):
        return value
    return "h" + hashlib.sha256(value.encode()).hexdigest()[:32]
