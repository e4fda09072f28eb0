"""The model gateway against the local fake OpenAI-compatible server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runhq.config import Settings
from runhq.llm.gateway import (
    Gateway,
    ModelUnavailable,
    OutputInvalidAfterRepair,
    render_facts,
    render_offline,
)
from runhq.llm.output import OutputInvalid, parse_report
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI

MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-flash")
MESSAGES = [
    {"role": "system", "content": "You answer in JSON."},
    {"role": "user", "content": "Facts: 3 runs failed."},
]
GOOD = json.dumps({"executive_summary": "All good.", "sections": [{"title": "A", "content": "b"}]})


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=MODELS) as server:
        yield server


@pytest.fixture
def gw_settings(tmp_path: Path, fake: FakeOpenAI) -> Settings:
    return make_settings(
        tmp_path,
        "sqlite://",
        llm_base_url=fake.base_url,
        llm_api_key=fake.api_key,
        llm_timeout_seconds=1.0,
    )


def _deadline(seconds: float = 30) -> float:
    return time.monotonic() + seconds


def test_success_records_tokens_cost_and_price(gw_settings: Settings, fake: FakeOpenAI) -> None:
    fake.enqueue_content(GOOD)
    c = Gateway(gw_settings).complete(
        model="gemini-2.5-pro",
        fallback_model="gemini-2.5-flash",
        messages=MESSAGES,
        deadline=_deadline(),
    )
    assert c.output["executive_summary"] == "All good."
    assert c.model_used == "gemini-2.5-pro"
    assert c.tokens_in > 0
    assert c.tokens_out > 0
    cfg = gw_settings.llm_models["gemini-2.5-pro"]
    expected = (
        c.tokens_in * cfg.input_eur_per_mtok / 1e6 + c.tokens_out * cfg.output_eur_per_mtok / 1e6
    )
    assert c.cost_eur == pytest.approx(expected)
    assert c.price["input_eur_per_mtok"] == cfg.input_eur_per_mtok
    sent = fake.chat_requests[-1]
    assert sent.body is not None
    assert sent.body["response_format"] == {"type": "json_object"}
    assert sent.headers["authorization"] == f"Bearer {fake.api_key}"


def test_429_then_success_is_retried(gw_settings: Settings, fake: FakeOpenAI) -> None:
    fake.enqueue_rate_limit(retry_after_seconds=0)
    fake.enqueue_content(GOOD)
    c = Gateway(gw_settings).complete(
        model="gemini-2.5-pro", fallback_model=None, messages=MESSAGES, deadline=_deadline()
    )
    assert c.model_used == "gemini-2.5-pro"
    assert len(fake.chat_requests) == 2
    assert any("429" in note for note in c.notes)


def test_persistent_500_falls_back_to_the_fallback_model(
    gw_settings: Settings, fake: FakeOpenAI
) -> None:
    for _ in range(gw_settings.llm_max_attempts):
        fake.enqueue_server_error(500, model="gemini-2.5-pro")
    fake.enqueue_content(GOOD, model="gemini-2.5-flash")
    c = Gateway(gw_settings).complete(
        model="gemini-2.5-pro",
        fallback_model="gemini-2.5-flash",
        messages=MESSAGES,
        deadline=_deadline(),
    )
    assert c.model_used == "gemini-2.5-flash"
    assert [r.model for r in fake.chat_requests] == ["gemini-2.5-pro"] * 3 + ["gemini-2.5-flash"]


def test_500_everywhere_is_model_unavailable(gw_settings: Settings, fake: FakeOpenAI) -> None:
    for _ in range(2 * gw_settings.llm_max_attempts):
        fake.enqueue_server_error(500)
    with pytest.raises(ModelUnavailable, match="HTTP 500"):
        Gateway(gw_settings).complete(
            model="gemini-2.5-pro",
            fallback_model="gemini-2.5-flash",
            messages=MESSAGES,
            deadline=_deadline(),
        )


def test_timeout_is_retried(gw_settings: Settings, fake: FakeOpenAI) -> None:
    fake.enqueue_timeout(3.0)
    fake.enqueue_content(GOOD)
    c = Gateway(gw_settings).complete(
        model="gemini-2.5-pro", fallback_model=None, messages=MESSAGES, deadline=_deadline()
    )
    assert c.output["executive_summary"] == "All good."
    assert any("timeout" in note for note in c.notes)


def test_malformed_json_gets_one_repair(gw_settings: Settings, fake: FakeOpenAI) -> None:
    fake.enqueue_content('{"executive_summary": ')
    fake.enqueue_content(GOOD)
    c = Gateway(gw_settings).complete(
        model="gemini-2.5-pro", fallback_model=None, messages=MESSAGES, deadline=_deadline()
    )
    assert c.calls == 2
    repair = fake.chat_requests[-1].body
    assert repair is not None
    assert repair["messages"][-2]["role"] == "assistant"
    assert "rejected" in repair["messages"][-1]["content"]
    # Both calls are paid for.
    assert c.tokens_in > 2 * len(MESSAGES[1]["content"]) // 4


def test_malformed_twice_fails_with_the_cost_known(gw_settings: Settings, fake: FakeOpenAI) -> None:
    fake.enqueue_content("not json")
    fake.enqueue_content(json.dumps({"executive_summary": "x"}))  # valid JSON, wrong schema
    with pytest.raises(OutputInvalidAfterRepair) as info:
        Gateway(gw_settings).complete(
            model="gemini-2.5-pro", fallback_model=None, messages=MESSAGES, deadline=_deadline()
        )
    assert info.value.cost > 0
    assert "sections" in str(info.value)


def test_wrong_api_key_is_not_retried(tmp_path: Path, fake: FakeOpenAI) -> None:
    settings = make_settings(
        tmp_path, "sqlite://", llm_base_url=fake.base_url, llm_api_key="sk-wrong"
    )
    with pytest.raises(ModelUnavailable, match="401") as info:
        Gateway(settings).complete(
            model="gemini-2.5-pro", fallback_model=None, messages=MESSAGES, deadline=_deadline()
        )
    assert "sk-wrong" not in str(info.value)
    assert len(fake.chat_requests) == 1


def test_unconfigured_model_name_is_a_clear_error(gw_settings: Settings) -> None:
    with pytest.raises(ModelUnavailable, match="no configuration"):
        Gateway(gw_settings).complete(
            model="mystery-model", fallback_model=None, messages=MESSAGES, deadline=_deadline()
        )


def test_deadline_is_respected(gw_settings: Settings, fake: FakeOpenAI) -> None:
    with pytest.raises(ModelUnavailable, match="timeout"):
        Gateway(gw_settings).complete(
            model="gemini-2.5-pro",
            fallback_model=None,
            messages=MESSAGES,
            deadline=time.monotonic() - 1,
        )
    assert fake.chat_requests == []


def test_upstream_name_and_per_model_endpoint(tmp_path: Path, fake: FakeOpenAI) -> None:
    settings = make_settings(
        tmp_path,
        "sqlite://",
        llm_models={
            "house-model": {
                "base_url": fake.base_url,
                "api_key": fake.api_key,
                "upstream_name": "gemini-3-flash",
                "input_eur_per_mtok": 1,
                "output_eur_per_mtok": 2,
            }
        },
    )
    fake.enqueue_content(GOOD)
    c = Gateway(settings)._complete_with("house-model", MESSAGES, _deadline(), [])
    assert c.model_used == "house-model"
    assert fake.chat_requests[-1].model == "gemini-3-flash"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (GOOD, True),
        ("```json\n" + GOOD + "\n```", True),
        ("[]", False),
        ('{"executive_summary": "", "sections": [{"title": "a", "content": "b"}]}', False),
        ('{"executive_summary": "s", "sections": []}', False),
    ],
)
def test_parse_report(text: str, ok: bool) -> None:
    if ok:
        assert parse_report(text)["executive_summary"]
    else:
        with pytest.raises(OutputInvalid):
            parse_report(text)


def test_offline_report_says_it_is_offline_and_lists_unavailable_sources() -> None:
    context = {
        "facts": {
            "failures": {
                "source": "failures",
                "title": "Failures",
                "status": "ok",
                "summary": "2 failed runs in 24 h.",
                "data": {"failed_24h": 2},
            },
            "stripe": {
                "source": "stripe",
                "title": "Revenue (Stripe)",
                "status": "unavailable",
                "summary": "x",
                "reason": "Stripe is not configured",
            },
        }
    }
    c = render_offline(label="Daily brief", sections=["A", "B"], context=context, lang="en")
    assert c.model_used == "offline"
    assert c.cost_eur == 0
    summary = c.output["executive_summary"]
    assert "offline report" in summary
    assert "2 failed runs in 24 h." in summary
    assert "Unavailable sources: Revenue (Stripe) (Stripe is not configured)." in summary
    assert c.output["risks"] == ["Revenue (Stripe) unavailable: Stripe is not configured"]
    parse_report(json.dumps(c.output))  # the offline report honours the same schema
    # Its own sentences in the report language (French by default); the facts as written.
    fr = render_offline(label="Brief", sections=["A"], context=context).output
    assert fr["executive_summary"].startswith("Brief — rapport hors ligne (aucun modèle")
    assert "Sources indisponibles\u00a0: Revenue (Stripe)" in fr["executive_summary"]
    assert fr["recommendations"][0].startswith("Configurez un modèle")
    empty = render_offline(label="Brief", sections=["A"], context={"facts": {}}).output
    assert empty["sections"] == [{"title": "Faits", "content": "Aucun fait n'a été recueilli."}]


def test_offline_sections_read_as_lines_not_json() -> None:
    data = {
        "failed_24h": 3,
        "rate": 0.123456,
        "healthy": True,
        "by_run_type_7d": {"SEO_AUDIT": 3, "CODE_REVIEW": 1},
        "recurring_24h": [],
        "recent": [{"run_type": "SEO_AUDIT", "platform_key": None, "error": "boom"}] * 12,
        "nested": {"workflow_runs": {"runs": [1, 2]}},
    }
    text = render_facts(data)
    lines = text.splitlines()
    assert lines[:5] == [
        "• failed 24h: 3",
        "• rate: 0.1235",
        "• healthy: yes",
        "• by run type 7d: SEO_AUDIT: 3; CODE_REVIEW: 1",
        "• recurring 24h: none",
    ]
    assert "\u2003– run type: SEO_AUDIT; platform key: —; error: boom" in lines
    assert "\u2003… and 2 more" in lines
    assert "\u2003\u2003• runs:" in lines
    assert "{" not in text
    huge = render_facts({"items": [{"text": "x" * 900} for _ in range(10)]})
    assert len(huge) <= 4000
    assert huge.endswith("\n…")
    context = {"facts": {"f": {"title": "F", "status": "ok", "summary": "S.", "data": data}}}
    section = render_offline(label="L", sections=["A"], context=context).output["sections"][0]
    assert section["content"] == "S.\n" + text
