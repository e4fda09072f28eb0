"""A local fake SMTP submission server (aiosmtpd), for tests.

Behaves like a submission server as RFC 5321 / 3207 / 4954 describe it, not like runhq's code:

- listens on 127.0.0.1 (ephemeral port) and offers ``STARTTLS`` with a self-signed certificate
  generated at start (``CN=localhost``, SAN ``localhost`` and ``127.0.0.1``); with
  ``require_starttls`` (default) every command but EHLO/NOOP/QUIT/STARTTLS before TLS answers
  ``530 Must issue a STARTTLS command first``;
- ``AUTH PLAIN`` / ``AUTH LOGIN`` only after TLS (``538`` otherwise), accepting one
  username/password (``535 5.7.8`` for anything else); when ``auth_required`` (default) MAIL
  without AUTH answers ``530``;
- records every accepted message: the parsed :class:`EmailMessage` (``policy.default``), the raw
  bytes, the envelope sender and recipients, and whether the session was under TLS;
- scripted failures: :meth:`fail_next` makes the next N ``MAIL``/``RCPT``/``DATA`` answer a reply
  such as ``451 4.3.0`` (temporary) or ``550 5.1.1`` (permanent); :meth:`drop_next` makes the
  next N ``MAIL`` commands close the connection without answering (a server that timed out an
  idle session).

::

    with FakeSmtp() as smtp:
        config = SmtpConfig(host=smtp.host, port=smtp.port, username=smtp.username,
                            password=smtp.password, sender="news@example.com")
        with SmtpSender(config, ssl_context=smtp.client_ssl_context()) as sender: ...
        smtp.fail_next("rcpt", 451, times=1)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "FakeSmtp", "ReceivedMessage"]

DEFAULT_USERNAME = "runhq-mailer"
DEFAULT_PASSWORD = "fake-smtp-password-0123456789"
Stage = Literal["mail", "rcpt", "data"]
_DEFAULT_TEXT = {
    421: "4.4.2 Service shutting down",
    450: "4.2.1 Mailbox temporarily unavailable",
    451: "4.3.0 Temporary local problem, try again later",
    452: "4.3.1 Insufficient system storage",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message too big",
    554: "5.7.1 Message rejected",
}


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool
    login: str | None


@dataclass
class _Script:
    stage: Stage
    code: int | None  # None: drop the connection
    text: str
    remaining: int


class _Controller(Controller):
    """aiosmtpd's Controller bound to an ephemeral port (port 0), counting connections."""

    connections = 0

    def factory(self) -> SMTP:
        self.connections += 1  # one SMTP protocol instance per connection
        return super().factory()  # type: ignore[no-any-return]

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class FakeSmtp:
    """Context manager running the server; see the module docstring."""

    def __init__(
        self,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        require_starttls: bool = True,
        auth_required: bool = True,
        offer_starttls: bool = True,
    ) -> None:
        self.username = username
        self.password = password
        self.require_starttls = require_starttls and offer_starttls
        self.auth_required = auth_required
        self.offer_starttls = offer_starttls
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[ReceivedMessage] = []
        #: (mechanism, login, success) of every AUTH attempt.
        self.auth_attempts: list[tuple[str, str, bool]] = []
        self.cert_pem = b""
        #: Called with the number of messages received so far, after each one is stored and
        #: before it is acknowledged (the client waits meanwhile).
        self.on_message: Callable[[int], None] | None = None
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self._controller: _Controller | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> FakeSmtp:
        tls_context: ssl.SSLContext | None = None
        if self.offer_starttls:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-smtp-")
            cert_file, key_file = _self_signed_certificate(Path(self._tmp.name))
            self.cert_pem = cert_file.read_bytes()
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(cert_file, key_file)
        controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=0,
            server_hostname="fake-smtp.test",
            ready_timeout=5.0,
            tls_context=tls_context,
            require_starttls=self.require_starttls,
            auth_required=self.auth_required,
            auth_require_tls=True,
            authenticator=self._authenticate,
        )
        controller.start()
        controller.connections = 0  # forget the readiness probe
        self._controller = controller
        self.port = controller.port
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def connections(self) -> int:
        """SMTP connections accepted so far."""
        return self._controller.connections if self._controller is not None else 0

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (hostname checked)."""
        if not self.cert_pem:
            raise RuntimeError("FakeSmtp is not running with STARTTLS")
        return ssl.create_default_context(cadata=self.cert_pem.decode())

    def fail_next(
        self, stage: Stage, code: int, *, times: int = 1, text: str | None = None
    ) -> None:
        """Answer the next ``times`` ``stage`` commands with ``code`` (e.g. 451, 550)."""
        with self._lock:
            self._scripts.append(
                _Script(stage, code, text or _DEFAULT_TEXT.get(code, "Error"), times)
            )

    def drop_next(self, *, times: int = 1) -> None:
        """Close the connection, without answering, on the next ``times`` MAIL commands."""
        with self._lock:
            self._scripts.append(_Script("mail", None, "", times))

    # -- behaviour -----------------------------------------------------------------------------

    def _take(self, stage: Stage) -> _Script | None:
        with self._lock:
            for index, script in enumerate(self._scripts):
                if script.stage != stage:
                    continue
                script.remaining -= 1
                if script.remaining <= 0:
                    self._scripts.pop(index)
                return script
        return None

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = login == self.username and auth_data.password.decode("utf-8", "replace") == (
            self.password
        )
        with self._lock:
            self.auth_attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return responses

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        script = self.fake._take("mail")
        if script is not None and script.code is None:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 Connection dropped"  # never reaches the client
        if script is not None:
            return f"{script.code} {script.text}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        script = self.fake._take("rcpt")
        if script is not None and script.code is not None:
            return f"{script.code} {script.text}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        script = self.fake._take("data")
        if script is not None and script.code is not None:
            return f"{script.code} {script.text}"
        raw = envelope.original_content or b""
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        login = session.login_data
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=parsed,
            raw=raw,
            tls=session.ssl is not None,
            login=login.decode() if isinstance(login, bytes) else login,
        )
        with self.fake._lock:
            self.fake.messages.append(received)
            count = len(self.fake.messages)
        if self.fake.on_message is not None:
            self.fake.on_message(count)
        return "250 2.0.0 Message accepted for delivery"


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A fresh P-256 key and a self-signed certificate for localhost / 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
