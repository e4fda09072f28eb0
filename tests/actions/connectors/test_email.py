"""Campaign email: message building (RFC 2369 / 8058 headers) and SMTP against FakeSmtp."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from runhq.actions.connectors.base import ActionFailed
from runhq.actions.connectors.email import SmtpConfig, SmtpSender, build_message
from tests.fakes.smtp_server import FakeSmtp

SENDER = "Acme News <news@acme.example>"
UNSUBSCRIBE = "https://acme.example/u/opaque-token-7f3a"


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean(smtp: FakeSmtp) -> None:
    smtp.messages.clear()
    smtp.auth_attempts.clear()
    smtp._scripts.clear()


def config_for(smtp: FakeSmtp, **overrides: object) -> SmtpConfig:
    config = SmtpConfig(
        host=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        sender="bounces@acme.example",
        timeout=3.0,
        local_hostname="runhq.test",
    )
    return replace(config, **overrides)  # type: ignore[arg-type]


def message(to: str = "ada@example.org", recipient_id: str = "rcp_1") -> EmailMessage:
    return build_message(
        sender=SENDER,
        to=to,
        subject="Spring release — what's new",
        text="Hello Ada,\n\nVersion 2 is out.\n",
        unsubscribe_url=UNSUBSCRIBE,
        campaign_id="cmp_2026_03",
        recipient_id=recipient_id,
    )


# -- the message -------------------------------------------------------------------------------


def test_build_message_has_one_click_unsubscribe_headers_and_link() -> None:
    built = message()
    assert built["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert built["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert built["Message-ID"] == "<runhq.cmp_2026_03.rcp_1@acme.example>"
    assert built["To"] == "ada@example.org"
    body = built.get_content()
    assert body.startswith("Hello Ada,")
    assert body.rstrip().endswith(f"Unsubscribe: {UNSUBSCRIBE}")


def test_message_id_is_deterministic_per_campaign_and_recipient() -> None:
    assert message()["Message-ID"] == message()["Message-ID"]
    assert message()["Message-ID"] != message(recipient_id="rcp_2")["Message-ID"]
    odd = build_message(
        sender=SENDER,
        to="x@example.org",
        subject="s",
        text="t",
        unsubscribe_url=UNSUBSCRIBE,
        campaign_id="spring campaign/2026",
        recipient_id="rcp_1",
    )
    msg_id = odd["Message-ID"]
    assert " " not in msg_id
    assert "/" not in msg_id
    assert msg_id.startswith("<runhq.h")
    assert msg_id.endswith(".rcp_1@acme.example>")


def test_build_message_sets_an_aware_date_only() -> None:
    when = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    arguments = {
        "sender": SENDER,
        "to": "a@example.org",
        "subject": "s",
        "text": "t",
        "unsubscribe_url": UNSUBSCRIBE,
        "campaign_id": "c",
        "recipient_id": "r",
    }
    assert build_message(**arguments, date=when)["Date"] == "Mon, 02 Mar 2026 09:30:00 +0000"
    with pytest.raises(ValueError, match="timezone-aware"):
        build_message(**arguments, date=when.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("unsubscribe_url", "http://acme.example/u/1", "https"),
        ("unsubscribe_url", "mailto:unsub@acme.example", "https"),
        ("unsubscribe_url", "https://acme.example/u/1,2", "commas"),
        ("subject", "Hi\r\nBcc: everyone@example.org", "single line"),
        ("to", "not-an-address", "email address"),
    ],
)
def test_build_message_refuses_unsafe_input(field: str, value: str, match: str) -> None:
    arguments = {
        "sender": SENDER,
        "to": "a@example.org",
        "subject": "s",
        "text": "t",
        "unsubscribe_url": UNSUBSCRIBE,
        "campaign_id": "c",
        "recipient_id": "r",
    }
    arguments[field] = value
    with pytest.raises(ValueError, match=match):
        build_message(**arguments)


# -- sending -----------------------------------------------------------------------------------


def test_send_uses_starttls_and_auth_and_delivers_the_headers(smtp: FakeSmtp) -> None:
    with SmtpSender(config_for(smtp), ssl_context=smtp.client_ssl_context()) as sender:
        sender.send(message())
        sender.send(message("grace@example.org", "rcp_2"))

    assert [m.rcpt_tos for m in smtp.messages] == [["ada@example.org"], ["grace@example.org"]]
    first = smtp.messages[0]
    assert first.tls is True
    assert first.login == smtp.username
    assert first.mail_from == "bounces@acme.example"
    received = first.message
    assert received["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["Message-ID"] == "<runhq.cmp_2026_03.rcp_1@acme.example>"
    assert received["Subject"] == "Spring release — what's new"
    assert UNSUBSCRIBE in received.get_content()
    assert smtp.auth_attempts == [(smtp.auth_attempts[0][0], smtp.username, True)]


def test_an_untrusted_certificate_stops_before_auth(smtp: FakeSmtp) -> None:
    with pytest.raises(ActionFailed) as caught:
        with SmtpSender(config_for(smtp), ssl_context=ssl.create_default_context()):
            pass
    assert caught.value.retryable is False
    assert "certificate" in caught.value.reason
    assert smtp.auth_attempts == []


def test_wrong_credentials_are_not_retryable_and_the_password_never_leaks(
    smtp: FakeSmtp,
) -> None:
    wrong = "not-the-password-4242"
    with pytest.raises(ActionFailed) as caught:
        with SmtpSender(config_for(smtp, password=wrong), ssl_context=smtp.client_ssl_context()):
            pass
    assert caught.value.retryable is False
    assert caught.value.status_code == 535
    assert wrong not in caught.value.reason
    assert smtp.password not in caught.value.reason


def test_a_password_is_never_sent_without_starttls(smtp: FakeSmtp) -> None:
    with pytest.raises(ActionFailed) as caught:
        with SmtpSender(config_for(smtp, starttls=False)):
            pass
    assert caught.value.retryable is False
    assert "without STARTTLS" in caught.value.reason
    assert smtp.auth_attempts == []


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_451_is_retryable_for_that_recipient_only(smtp: FakeSmtp, stage: str) -> None:
    smtp.fail_next(stage, 451)  # type: ignore[arg-type]
    with SmtpSender(config_for(smtp), ssl_context=smtp.client_ssl_context()) as sender:
        with pytest.raises(ActionFailed) as caught:
            sender.send(message())
        sender.send(message("grace@example.org", "rcp_2"))  # the session goes on

    assert caught.value.retryable is True
    assert caught.value.status_code == 451
    assert "ada@example.org" in caught.value.reason
    assert [m.rcpt_tos for m in smtp.messages] == [["grace@example.org"]]


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_550_is_not_retryable(smtp: FakeSmtp, stage: str) -> None:
    smtp.fail_next(stage, 550)  # type: ignore[arg-type]
    with SmtpSender(config_for(smtp), ssl_context=smtp.client_ssl_context()) as sender:
        with pytest.raises(ActionFailed) as caught:
            sender.send(message())
    assert caught.value.retryable is False
    assert caught.value.status_code == 550
    assert "5.1.1" in caught.value.reason
    assert smtp.messages == []


def test_a_dropped_connection_is_reopened_once(smtp: FakeSmtp) -> None:
    with SmtpSender(config_for(smtp), ssl_context=smtp.client_ssl_context()) as sender:
        before = smtp.connections
        smtp.drop_next()
        sender.send(message())
    assert smtp.connections == before + 1
    assert [m.rcpt_tos for m in smtp.messages] == [["ada@example.org"]]


def test_a_connection_dropped_twice_is_a_retryable_failure(smtp: FakeSmtp) -> None:
    with SmtpSender(config_for(smtp), ssl_context=smtp.client_ssl_context()) as sender:
        smtp.drop_next(times=2)
        with pytest.raises(ActionFailed) as caught:
            sender.send(message())
        assert caught.value.retryable is True
        assert "nothing was delivered" in caught.value.reason
        sender.send(message())  # and the sender recovers on the next message
    assert len(smtp.messages) == 1


def test_a_server_that_is_down_is_retryable() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = SmtpConfig(
        host="127.0.0.1",
        port=port,
        username=None,
        password=None,
        sender="b@acme.example",
        timeout=1.0,
        local_hostname="runhq.test",
    )
    with pytest.raises(ActionFailed) as caught:
        with SmtpSender(config):
            pass
    assert caught.value.retryable is True


def test_a_message_needs_exactly_one_recipient(smtp: FakeSmtp) -> None:
    two = message()
    del two["To"]
    two["To"] = "a@example.org, b@example.org"
    with SmtpSender(config_for(smtp), ssl_context=smtp.client_ssl_context()) as sender:
        with pytest.raises(ValueError, match="exactly one"):
            sender.send(two)
    assert smtp.messages == []


def test_the_config_repr_hides_the_password(smtp: FakeSmtp) -> None:
    assert smtp.password not in repr(config_for(smtp))


def test_a_server_without_starttls_is_refused() -> None:
    with FakeSmtp(offer_starttls=False) as plain:
        with pytest.raises(ActionFailed) as caught:
            with SmtpSender(config_for(plain)):
                pass
        assert plain.auth_attempts == []
    assert caught.value.retryable is False
    assert "does not offer STARTTLS" in caught.value.reason
