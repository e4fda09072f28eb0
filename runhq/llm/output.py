"""The report every run produces: its JSON Schema (one definition) and its validation."""

from __future__ import annotations

import json
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

_VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA)


class OutputInvalid(ValueError):
    """The model's answer is not a report: not JSON, or not matching the schema."""


def parse_report(text: str) -> dict[str, Any]:
    """Parse and validate a model answer; tolerate a Markdown code fence around the JSON."""
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
    errors = sorted(_VALIDATOR.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.path) or "(root)"
        raise OutputInvalid(f"does not match the report schema at {where}: {err.message}")
    assert isinstance(value, dict)  # noqa: S101 - guaranteed by the schema's type: object
    return value


def format_instructions(sections: list[str]) -> str:
    """The output contract appended to every system prompt."""
    return (
        "Answer with ONE JSON object and nothing else, matching this JSON Schema:\n"
        f"{json.dumps(REPORT_SCHEMA, separators=(',', ':'))}\n"
        "executive_summary: 3 to 6 sentences a busy executive reads first, with the key "
        "figures. sections: one per expected section, in this order: "
        + "; ".join(sections)
        + ". recommendations: concrete next actions. risks: what could go wrong. "
        "Use only the facts provided; when a fact source is unavailable, say so."
    )
