"""Signed deploy webhooks against a local receiver that checks signatures independently."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from runhq.actions.connectors.base import ActionFailed, ActionResult
from runhq.actions.connectors.webhook import deploy_webhook, serialize, sign, verify
from tests.fakes.deploy_receiver import FakeDeployReceiver

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECRET = "whsec_testDeploySecret_9f8e7d6c5b4a"
PAYLOAD = {"version": "1.4.2", "environment": "production", "run_id": "run_42"}


@pytest.fixture
def receiver() -> Iterator[FakeDeployReceiver]:
    with FakeDeployReceiver(secret=SECRET, clock=NOW.timestamp) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


def deploy(client: httpx.Client, url: str, **overrides: Any) -> ActionResult:
    arguments: dict[str, Any] = {
        "url": url,
        "secret": SECRET,
        "payload": PAYLOAD,
        "idempotency_key": "run_42:deploy",
        "now": NOW,
    }
    arguments.update(overrides)
    return deploy_webhook(client, **arguments)


# -- signing -----------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k3y", "1700000000", body) == expected


def test_serialize_is_compact_with_sorted_keys() -> None:
    assert serialize({"b": 1, "a": {"d": 2, "c": [1, 2]}}) == b'{"a":{"c":[1,2],"d":2},"b":1}'
    with pytest.raises(ValueError, match="JSON"):
        serialize({"x": float("nan")})


def test_verify_accepts_a_fresh_valid_signature_and_rejects_everything_else() -> None:
    body = serialize(PAYLOAD)
    timestamp = str(int(NOW.timestamp()))
    header = f"sha256={sign(SECRET, timestamp, body)}"
    assert verify(SECRET, timestamp, body, header, now=NOW)
    assert verify(SECRET, timestamp, body, header, now=NOW + timedelta(seconds=299))
    # tampered body, wrong secret, wrong scheme, garbage
    assert not verify(SECRET, timestamp, body.replace(b"1.4.2", b"6.6.6"), header, now=NOW)
    assert not verify("another-secret", timestamp, body, header, now=NOW)
    assert not verify(SECRET, timestamp, body, header.replace("sha256=", "sha1="), now=NOW)
    assert not verify(SECRET, timestamp, body, "sha256=zz", now=NOW)
    assert not verify(SECRET, timestamp, body, "sha256=é", now=NOW)
    assert not verify(SECRET, "not-a-time", body, header, now=NOW)
    # stale either way
    assert not verify(SECRET, timestamp, body, header, now=NOW + timedelta(seconds=301))
    assert not verify(SECRET, timestamp, body, header, now=NOW - timedelta(seconds=301))
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(SECRET, timestamp, body, header, now=NOW.replace(tzinfo=None))


# -- delivery ----------------------------------------------------------------------------------


def test_deploy_is_signed_and_verified_by_the_receiver(
    receiver: FakeDeployReceiver, client: httpx.Client
) -> None:
    result = deploy(client, receiver.url)

    assert result.ok
    assert len(receiver.deliveries) == 1
    delivery = receiver.deliveries[0]
    assert delivery.valid_signature
    assert delivery.fresh
    assert not delivery.duplicate
    assert delivery.body == b'{"environment":"production","run_id":"run_42","version":"1.4.2"}'
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-runhq-timestamp"] == str(int(NOW.timestamp()))
    assert delivery.headers["x-runhq-signature"].startswith("sha256=")
    assert delivery.idempotency_key == "run_42:deploy"
    assert receiver.deploys == [PAYLOAD]
    details = result.details
    assert details["status_code"] == 202
    assert details["host"] == "127.0.0.1"
    assert "dep_1" in details["response_excerpt"]
    assert SECRET not in json.dumps(details)
    # our own verify() agrees with the receiver
    assert verify(
        SECRET,
        delivery.headers["x-runhq-timestamp"],
        delivery.body,
        delivery.headers["x-runhq-signature"],
        now=NOW,
    )


def test_a_tampered_body_is_rejected_by_the_receiver(
    receiver: FakeDeployReceiver, client: httpx.Client
) -> None:
    timestamp = str(int(NOW.timestamp()))
    signed = serialize(PAYLOAD)
    tampered = serialize({**PAYLOAD, "version": "6.6.6"})
    response = client.post(
        receiver.url,
        content=tampered,
        headers={
            "Content-Type": "application/json",
            "X-Runhq-Timestamp": timestamp,
            "X-Runhq-Signature": f"sha256={sign(SECRET, timestamp, signed)}",
            "Idempotency-Key": "k",
        },
    )
    assert response.status_code == 401
    assert receiver.deliveries[0].valid_signature is False
    assert receiver.deploys == []


def test_a_wrong_secret_fails_without_leaking_either_secret(
    receiver: FakeDeployReceiver, client: httpx.Client
) -> None:
    wrong = "whsec_wrongSecretValue_123456"
    with pytest.raises(ActionFailed) as caught:
        deploy(client, receiver.url, secret=wrong)
    assert caught.value.retryable is False
    assert caught.value.status_code == 401
    assert "401" in caught.value.reason
    assert wrong not in caught.value.reason
    assert SECRET not in caught.value.reason
    assert receiver.deliveries[0].valid_signature is False


def test_a_stale_timestamp_is_rejected(receiver: FakeDeployReceiver, client: httpx.Client) -> None:
    with pytest.raises(ActionFailed) as caught:
        deploy(client, receiver.url, now=NOW - timedelta(minutes=10))
    assert caught.value.retryable is False
    assert receiver.deliveries[0].valid_signature is True
    assert receiver.deliveries[0].fresh is False


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (429, True), (500, True), (503, True)]
)
def test_failures_say_whether_a_retry_can_help(
    receiver: FakeDeployReceiver, client: httpx.Client, status: int, retryable: bool
) -> None:
    receiver.fail(status, {"error": f"scripted {status}"})
    with pytest.raises(ActionFailed) as caught:
        deploy(client, receiver.url)
    assert caught.value.retryable is retryable
    assert caught.value.status_code == status
    assert f"scripted {status}" in caught.value.reason
    assert len(receiver.deliveries) == 1  # never retried automatically


def test_a_timeout_is_retryable_and_a_resend_with_the_same_key_does_not_deploy_twice(
    receiver: FakeDeployReceiver,
) -> None:
    receiver.hang(1.0)
    with httpx.Client(timeout=0.2) as impatient, pytest.raises(ActionFailed) as caught:
        deploy(impatient, receiver.url)
    assert caught.value.retryable is True
    assert "may or may not" in caught.value.reason
    assert len(receiver.deploys) == 1  # it landed, the answer was lost

    with httpx.Client(timeout=2.0) as client:
        result = deploy(client, receiver.url)
    assert result.ok
    assert receiver.deliveries[-1].duplicate is True
    assert len(receiver.deploys) == 1


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with httpx.Client(timeout=1.0) as client, pytest.raises(ActionFailed) as caught:
        deploy(client, f"http://127.0.0.1:{port}/hooks/deploy")
    assert caught.value.retryable is True
    assert "nothing was sent" in caught.value.reason


def test_a_url_carrying_a_token_never_appears_in_reasons(
    receiver: FakeDeployReceiver, client: httpx.Client
) -> None:
    token = "tok_superSecretDeployToken_77"
    receiver.fail(500, {"error": f"upstream refused {token} and {SECRET}"})
    with pytest.raises(ActionFailed) as caught:
        deploy(client, f"{receiver.url}?token={token}")
    assert token not in caught.value.reason
    assert SECRET not in caught.value.reason
    assert "[redacted]" in caught.value.reason


def test_bad_arguments_are_refused_before_sending(client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deploy(client, "https://deploy.example/hook", now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="http"):
        deploy(client, "ftp://deploy.example/hook")
    with pytest.raises(ValueError, match="idempotency"):
        deploy(client, "https://deploy.example/hook", idempotency_key=" ")
