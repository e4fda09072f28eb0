"""Tests of the fake OpenAI server itself, driven through the real ``openai`` SDK client."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.openai_server import FakeOpenAI, ScriptedResponse, error_body

USER_MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=5.0
    ) as sdk_client:
        yield sdk_client


def _raw_post(fake: FakeOpenAI, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Authorization": f"Bearer {fake.api_key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_happy_path_shape(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER_MSG)
    completion = raw.parse()

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert isinstance(completion.created, int)
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert choice.message.content == "Echo: Say hello"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3  # ceil(len("Say hello") / 4)
    assert completion.usage.completion_tokens == 4  # ceil(len("Echo: Say hello") / 4)
    assert completion.usage.total_tokens == 7

    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.http_request.headers["authorization"] == f"Bearer {fake.api_key}"
    for name in (
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ):
        assert name in raw.headers


def test_json_mode_default_responder_returns_report_json(client: openai.OpenAI) -> None:
    prompt = "Write the weekly report as JSON. " + "x" * 300
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content
    assert content is not None
    report = json.loads(content)
    assert set(report) == {"executive_summary", "sections", "recommendations"}
    assert prompt[:200] in report["executive_summary"]
    assert prompt[:201] not in report["executive_summary"]
    assert all({"title", "content"} <= set(s) for s in report["sections"])
    assert isinstance(report["recommendations"], list)


def test_custom_responder_receives_parsed_body(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return "custom answer"

    fake.responder = responder
    completion = client.chat.completions.create(model="gpt-4o", messages=USER_MSG, temperature=0.2)
    assert completion.choices[0].message.content == "custom answer"
    assert seen[0]["model"] == "gpt-4o"
    assert seen[0]["temperature"] == 0.2


def test_wrong_api_key_is_401(fake: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong-key", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as exc_info:
            bad.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    err = exc_info.value
    assert err.status_code == 401
    assert err.code == "invalid_api_key"
    assert err.type == "invalid_request_error"
    assert err.param is None
    assert "x-request-id" in err.response.headers


def test_missing_api_key_is_401(fake: FakeOpenAI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request("GET", "/v1/models")
        response = conn.getresponse()
        payload = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 401
    assert payload["error"]["code"] == "invalid_api_key"
    assert payload["error"]["type"] == "invalid_request_error"


def test_missing_messages_is_400_with_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert exc_info.value.param == "messages"
    assert exc_info.value.code == "empty_array"

    with pytest.raises(openai.BadRequestError) as exc_info:
        client.post("/chat/completions", body={"model": "gpt-4o-mini"}, cast_to=object)
    assert exc_info.value.param == "messages"
    assert exc_info.value.code == "missing_required_parameter"
    assert exc_info.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER_MSG}, "model"),
        ({"model": 3, "messages": USER_MSG}, "model"),
        ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"content": "hi"}]}, "messages[0].role"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "bot", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "gpt-4o-mini", "messages": USER_MSG, "temperature": 3}, "temperature"),
        ({"model": "gpt-4o-mini", "messages": USER_MSG, "stream": True}, "stream"),
    ],
)
def test_invalid_bodies_are_400(client: openai.OpenAI, body: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.post("/chat/completions", body=body, cast_to=object)
    assert exc_info.value.param == param
    assert exc_info.value.type == "invalid_request_error"


def test_non_json_body_is_400(fake: FakeOpenAI) -> None:
    status, payload = _raw_post(fake, "/v1/chat/completions", b"{not json")
    assert status == 400
    assert payload["error"]["type"] == "invalid_request_error"
    assert "parse the JSON body" in payload["error"]["message"]


def test_json_object_without_json_in_messages_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=USER_MSG, response_format={"type": "json_object"}
        )
    assert exc_info.value.param == "messages"
    assert "json" in exc_info.value.message

    # The word may appear in any message, in any case.
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Answer in JSON."}, *USER_MSG],
        response_format={"type": "json_object"},
    )
    assert completion.choices[0].message.content is not None


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc_info:
        client.chat.completions.create(model="gpt-nope", messages=USER_MSG)
    assert exc_info.value.code == "model_not_found"


def test_unknown_path_is_404_error_object(fake: FakeOpenAI) -> None:
    status, payload = _raw_post(fake, "/v1/nope", b"{}")
    assert status == 404
    assert payload["error"]["message"] == "Invalid URL (POST /v1/nope)"
    assert payload["error"]["type"] == "invalid_request_error"


def test_models_list(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == fake.models
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


def test_rate_limit_is_429_with_retry_after(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue_rate_limit(retry_after_seconds=7)
    with pytest.raises(openai.RateLimitError) as exc_info:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    err = exc_info.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.type == "requests"
    assert err.response.headers["retry-after"] == "7"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    # The script is consumed: the next request succeeds.
    client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)


def test_insufficient_quota_is_429(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue_insufficient_quota()
    with pytest.raises(openai.RateLimitError) as exc_info:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    assert exc_info.value.code == "insufficient_quota"


def test_sdk_retries_honour_retry_after(fake: FakeOpenAI) -> None:
    fake.enqueue_rate_limit(retry_after_seconds=0.05)
    fake.enqueue_status(
        503, error_body("Overloaded", type_="server_error"), headers={"retry-after": "0.05"}
    )
    with openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=2) as retrying:
        completion = retrying.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    assert completion.choices[0].message.content == "Echo: Say hello"
    assert [r.status for r in fake.chat_requests] == [429, 503, 200]


def test_server_error_is_500(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue_server_error()
    with pytest.raises(openai.InternalServerError) as exc_info:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    assert exc_info.value.status_code == 500
    assert exc_info.value.type == "server_error"


def test_timeout_surfaces_as_api_timeout_error(fake: FakeOpenAI) -> None:
    fake.enqueue_timeout(2.0)
    with openai.OpenAI(
        base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=0.5
    ) as impatient:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    assert time.monotonic() - started < 1.5


def test_close_does_not_hang_while_sleeping() -> None:
    fake = FakeOpenAI()
    fake.enqueue_timeout(30.0)
    with openai.OpenAI(
        base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=0.2
    ) as impatient:
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
        started = time.monotonic()
        fake.close()
    assert time.monotonic() - started < 1.0
    assert fake.closed
    fake.close()  # idempotent


def test_enqueue_content_returns_exact_text(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue_content('{"executive_summary": ')
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"},
    )
    assert completion.choices[0].message.content == '{"executive_summary": '


def test_enqueue_status_generic(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue_status(
        403,
        error_body("Forbidden for this project", code="unsupported_country_region_territory"),
        headers={"x-custom": "yes"},
    )
    with pytest.raises(openai.PermissionDeniedError) as exc_info:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    assert exc_info.value.response.headers["x-custom"] == "yes"


def test_scripted_responses_are_fifo_and_per_model(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue_content("for gpt-4o", model="gpt-4o")
    fake.enqueue(ScriptedResponse(content="first"), ScriptedResponse(content="second"))
    assert fake.pending_scripted() == 3
    assert fake.pending_scripted("gpt-4o") == 1

    def ask(model: str) -> str | None:
        completion = client.chat.completions.create(model=model, messages=USER_MSG)
        return completion.choices[0].message.content

    assert ask("gpt-4o-mini") == "first"
    assert ask("gpt-4o-mini") == "second"
    assert ask("gpt-4o-mini") == "Echo: Say hello"
    assert ask("gpt-4o") == "for gpt-4o"
    assert fake.pending_scripted() == 0


def test_requests_are_recorded_and_reset(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG, max_tokens=50)
    client.models.list()

    recorded = fake.requests
    assert [(r.method, r.path, r.status) for r in recorded] == [
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/v1/models", 200),
    ]
    chat = fake.chat_requests[0]
    assert chat.body == {"model": "gpt-4o-mini", "messages": USER_MSG, "max_tokens": 50}
    assert chat.model == "gpt-4o-mini"
    assert chat.headers["authorization"] == f"Bearer {fake.api_key}"
    assert chat.headers["content-type"] == "application/json"

    fake.enqueue_server_error()
    fake.responder = lambda body: "changed"
    fake.reset()
    assert fake.requests == []
    assert fake.pending_scripted() == 0
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
    assert completion.choices[0].message.content == "Echo: Say hello"


def test_concurrent_requests_consume_each_script_once(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    for i in range(10):
        fake.enqueue_content(f"scripted-{i}")

    def ask(_: int) -> str | None:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)
        return completion.choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(40)))

    assert sorted(a for a in answers if a and a.startswith("scripted-")) == sorted(
        f"scripted-{i}" for i in range(10)
    )
    assert answers.count("Echo: Say hello") == 30
    assert len(fake.chat_requests) == 40
    assert fake.pending_scripted() == 0
