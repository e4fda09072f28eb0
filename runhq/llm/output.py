"""The report every run produces: its JSON Schema (one definition) and its validation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import jsonschema

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["executive_summary", "sections"],
    "properties": {
        "executive_summary": {"type": "string", "minLength": 1, "maxLength": 6000},
        "sections": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["title", "content"],
                "properties": {
                    "title": {"type": "string", "minLength": 1},
                    "content": {"type": "string"},
                },
            },
        },
        "recommendations": {"type": "array", "items": {"type": "string"}},
        "risks": {"type": "array", "items": {"type": "string"}},
    },
}

# A gate's report (gate = true in the registry) also carries its verdict: the owner approves
# a go/no-go, and a deployment checks the latest gate's verdict. Asked for, not required: a
# report without one is still a report, and the engine's rule then decides the verdict.
GATE_REPORT_SCHEMA: dict[str, Any] = {
    **REPORT_SCHEMA,
    "properties": {
        **REPORT_SCHEMA["properties"],
        "verdict": {"enum": ["pass", "fail"]},
        "verdict_reasons": {"type": "array", "items": {"type": "string"}},
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA)
_GATE_VALIDATOR = jsonschema.Draft202012Validator(GATE_REPORT_SCHEMA)


class OutputInvalid(ValueError):
    """The model's answer is not a report: not JSON, or not matching the schema."""


def parse_report(text: str) -> dict[str, Any]:
    """Parse and validate a model answer; tolerate a Markdown code fence around the JSON."""
    return _parse(text, _VALIDATOR, "report")


def parse_gate_report(text: str) -> dict[str, Any]:
    """As ``parse_report``, for a gate: a verdict, if given, is "pass" or "fail"."""
    return _parse(text, _GATE_VALIDATOR, "gate report")


def _parse(text: str, validator: jsonschema.Draft202012Validator, what: str) -> dict[str, Any]:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        stripped = stripped.removeprefix("json").strip()
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise OutputInvalid(
            f"not valid JSON ({exc.msg} at line {exc.lineno} col {exc.colno})"
        ) from None
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.path) or "(root)"
        raise OutputInvalid(f"does not match the {what} schema at {where}: {err.message}")
    assert isinstance(value, dict)  # noqa: S101 - guaranteed by the schema's type: object
    return value


def format_instructions(sections: Sequence[str], *, gate: bool = False) -> str:
    """The output contract appended to every system prompt."""
    return _instructions(tuple(sections), gate)


@lru_cache(maxsize=256)  # one per run type: built for every run, the same each time
def _instructions(sections: tuple[str, ...], gate: bool) -> str:
    schema = GATE_REPORT_SCHEMA if gate else REPORT_SCHEMA
    text = (
        "Answer with ONE JSON object and nothing else, matching this JSON Schema:\n"
        f"{json.dumps(schema, separators=(',', ':'))}\n"
        "executive_summary: 3 to 6 sentences a busy executive reads first, with the key "
        "figures. sections: one per expected section, in this order: "
        + "; ".join(sections)
        + ". recommendations: concrete next actions. risks: what could go wrong. "
        "Use only the facts provided; when a fact source is unavailable, say so."
    )
    if gate:
        text += (
            ' Always give verdict: "pass" only if every gate criterion passed on evidence in '
            'the facts, otherwise "fail" (an unknown criterion is never a pass); and '
            "verdict_reasons: one short line per criterion that did not pass (empty when the "
            "verdict is pass). A criterion whose source is not configured here is not checked "
            "(say so); one whose source failed is unknown."
        )
    return text
