"""The report contract: parsing, the gate's verdict, the instructions the model is given."""

from __future__ import annotations

import json

import pytest

from runhq.llm.output import (
    GATE_REPORT_SCHEMA,
    OutputInvalid,
    format_instructions,
    parse_gate_report,
    parse_report,
)

REPORT = {"executive_summary": "S.", "sections": [{"title": "T", "content": "C"}]}


def test_a_report_in_a_code_fence_is_parsed() -> None:
    assert parse_report("```json\n" + json.dumps(REPORT) + "\n```") == REPORT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"sections": []}), "at (root): 'executive_summary' is a required property"),
        (json.dumps({**REPORT, "sections": []}), "at sections"),
    ],
)
def test_what_is_not_a_report_says_where(text: str, message: str) -> None:
    with pytest.raises(OutputInvalid, match="not valid JSON|report schema") as err:
        parse_report(text)
    assert message in str(err.value)


def test_a_gate_verdict_is_pass_or_fail_when_given() -> None:
    assert parse_gate_report(json.dumps(REPORT)) == REPORT  # the rule decides then
    given = {**REPORT, "verdict": "fail", "verdict_reasons": ["CI red"]}
    assert parse_gate_report(json.dumps(given)) == given
    with pytest.raises(OutputInvalid, match="gate report schema at verdict"):
        parse_gate_report(json.dumps({**REPORT, "verdict": "maybe"}))
    with pytest.raises(OutputInvalid, match="gate report schema at verdict_reasons"):
        parse_gate_report(json.dumps({**REPORT, "verdict": "pass", "verdict_reasons": "none"}))
    # Not a gate: a verdict is just an extra field.
    assert parse_report(json.dumps({**REPORT, "verdict": "maybe"}))["verdict"] == "maybe"


def test_only_a_gate_is_asked_for_a_verdict() -> None:
    gate = format_instructions(["A", "B"], gate=True)
    assert json.dumps(GATE_REPORT_SCHEMA, separators=(",", ":")) in gate
    assert "Always give verdict" in gate
    plain = format_instructions(["A", "B"])
    assert "verdict" not in plain
    assert "in this order: A; B." in plain
