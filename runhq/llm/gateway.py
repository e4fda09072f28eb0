"""Model calls: OpenAI-compatible chat completions with retries, a fallback model, one
repair attempt for invalid output, and the cost of every token; or the offline provider.

No model name is hard-coded here: names resolve through ``Settings.llm_models``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from runhq.config import ModelConfig, Settings
from runhq.i18n import get_translator
from runhq.llm.output import OutputInvalid, parse_report

logger = logging.getLogger(__name__)

OFFLINE = "offline"
Parser = Callable[[str], dict[str, Any]]
_RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


class ModelUnavailable(RuntimeError):
    """Every model of the chain failed; the message is safe to show (no secrets).

    Carries what the failed calls consumed, so the run records what it cost.
    """

    def __init__(
        self,
        message: str,
        *,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost: float = 0.0,
        model: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        self.cost = cost
        self.model = model


@dataclass
class Completion:
    output: dict[str, Any]
    model_used: str
    provider: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_eur: float = 0.0
    price: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    notes: list[str] = field(default_factory=list)


def _cost(tokens_in: int, tokens_out: int, cfg: ModelConfig) -> float:
    return round(
        tokens_in * cfg.input_eur_per_mtok / 1e6 + tokens_out * cfg.output_eur_per_mtok / 1e6, 8
    )


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, openai.APIStatusError):
        code = exc.code or getattr(exc, "type", None) or ""
        return f"HTTP {exc.status_code} {code}".strip()
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection failed"
    return type(exc).__name__


class Gateway:
    """Calls models by runhq name. Thread-safe; one HTTP client per (base URL, key)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}

    @property
    def offline(self) -> bool:
        return not self.settings.llm_configured

    def _config(self, model: str) -> ModelConfig:
        cfg = self.settings.llm_models.get(model)
        if cfg is None:
            raise ModelUnavailable(
                f"model {model!r} has no configuration in RUNHQ_LLM_MODELS "
                f"(known: {', '.join(sorted(self.settings.llm_models))})"
            )
        return cfg

    def _client(self, cfg: ModelConfig) -> openai.OpenAI:
        base_url = cfg.base_url or self.settings.llm_base_url
        key_secret = cfg.api_key or self.settings.llm_api_key
        key = key_secret.get_secret_value() if key_secret else "unused"
        cache_key = (base_url or "", key)
        client = self._clients.get(cache_key)
        if client is None:
            # Retries are ours (tenacity) so that they are logged, bounded and honour
            # Retry-After the same way for every provider.
            client = openai.OpenAI(
                base_url=base_url,
                api_key=key,
                max_retries=0,
                timeout=self.settings.llm_timeout_seconds,
            )
            self._clients[cache_key] = client
        return client

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        cap = self.settings.llm_retry_max_seconds
        if isinstance(exc, openai.RateLimitError):
            header = exc.response.headers.get("retry-after")
            try:
                if header is not None:
                    return min(max(float(header), 0.0), cap)
            except ValueError:
                pass
        base = self.settings.llm_retry_base_seconds
        return float(min(base * 2 ** (state.attempt_number - 1), cap))

    def _call(
        self, model: str, messages: list[dict[str, str]], timeout: float, notes: list[str]
    ) -> tuple[str, int, int]:
        cfg = self._config(model)
        client = self._client(cfg)

        def once() -> tuple[str, int, int]:
            response = client.chat.completions.create(
                model=cfg.upstream_name or model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                response_format={"type": "json_object"},
                temperature=0.2,
                timeout=timeout,
            )
            content = response.choices[0].message.content if response.choices else None
            usage = response.usage
            return (
                content or "",
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
            )

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            note = f"{model}: attempt {state.attempt_number} failed ({_describe(exc)}); retrying"
            notes.append(note)
            logger.warning(note)

        retrying = Retrying(
            retry=retry_if_exception_type(_RETRYABLE),
            stop=stop_after_attempt(self.settings.llm_max_attempts),
            wait=self._wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(once)

    def complete(
        self,
        *,
        model: str,
        fallback_model: str | None,
        messages: list[dict[str, str]],
        deadline: float,
        parse: Parser = parse_report,
    ) -> Completion:
        """Call ``model`` (then ``fallback_model``) until a valid answer comes back.

        ``deadline`` is a ``time.monotonic()`` instant: the run's timeout. ``parse`` turns
        the text into the expected object or raises ``OutputInvalid`` (default: a report).
        """
        notes: list[str] = []
        failures: list[str] = []
        spent = ModelUnavailable("", tokens_in=0, tokens_out=0, cost=0.0)
        invalid_output = False
        for name in [model] + ([fallback_model] if fallback_model else []):
            try:
                completion = self._complete_with(name, messages, deadline, notes, parse)
            except (openai.APIError, ModelUnavailable) as exc:
                why = _describe(exc) if isinstance(exc, openai.APIError) else str(exc)
                if isinstance(exc, ModelUnavailable):
                    spent.tokens_in += exc.tokens_in
                    spent.tokens_out += exc.tokens_out
                    spent.cost += exc.cost
                    spent.model = exc.model or spent.model
                invalid_output = isinstance(exc, OutputInvalidAfterRepair)
                failures.append(f"{name}: {why}")
                notes.append(f"{name} failed: {failures[-1]}")
                logger.warning("model %s failed: %s", name, failures[-1])
                continue
            # What the failed models consumed is part of this run's cost too.
            completion.tokens_in += spent.tokens_in
            completion.tokens_out += spent.tokens_out
            completion.cost_eur = round(completion.cost_eur + spent.cost, 8)
            return completion
        error = OutputInvalidAfterRepair if invalid_output else ModelUnavailable
        raise error(
            "model provider failed: " + "; ".join(failures),
            tokens_in=spent.tokens_in,
            tokens_out=spent.tokens_out,
            cost=round(spent.cost, 8),
            model=spent.model,
        )

    def _complete_with(
        self,
        name: str,
        messages: list[dict[str, str]],
        deadline: float,
        notes: list[str],
        parse: Parser = parse_report,
    ) -> Completion:
        cfg = self._config(name)
        tokens_in = tokens_out = calls = 0
        conversation = list(messages)
        for attempt in range(2):  # the answer, then at most one repair
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelUnavailable(f"{name}: the run's timeout was reached")
            text, t_in, t_out = self._call(
                name, conversation, min(remaining, self.settings.llm_timeout_seconds), notes
            )
            calls += 1
            tokens_in += t_in
            tokens_out += t_out
            try:
                output = parse(text)
            except OutputInvalid as exc:
                if attempt == 1:
                    raise OutputInvalidAfterRepair(
                        f"{name} returned an invalid report twice: {exc}",
                        tokens_in=tokens_in,
                        tokens_out=tokens_out,
                        cost=_cost(tokens_in, tokens_out, cfg),
                        model=name,
                    ) from None
                notes.append(f"{name}: invalid report ({exc}); asked for a repair")
                conversation += [
                    {"role": "assistant", "content": text[:20000]},
                    {
                        "role": "user",
                        "content": f"Your answer was rejected: it is {exc}. Reply again with "
                        "only the corrected JSON object, following the schema exactly.",
                    },
                ]
                continue
            return Completion(
                output=output,
                model_used=name,
                provider=cfg.provider,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_eur=_cost(tokens_in, tokens_out, cfg),
                price={
                    "model": name,
                    "input_eur_per_mtok": cfg.input_eur_per_mtok,
                    "output_eur_per_mtok": cfg.output_eur_per_mtok,
                },
                calls=calls,
                notes=notes,
            )
        raise AssertionError("unreachable")  # pragma: no cover


class OutputInvalidAfterRepair(ModelUnavailable):
    """A model answered twice with something that is not a valid report."""


_MAX_ITEMS = 10  # list items shown per list; the rest is counted
_MAX_CHARS = 4000  # per section
_INDENT = "\u2003"  # an em space: kept where the page collapses ordinary leading spaces


def _words(key: str) -> str:
    # A field name reads as words; a value used as a key (a run type, a platform) stays.
    return key.replace("_", " ") if key.islower() else key


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_flat(value: Any) -> bool:
    return not isinstance(value, dict | list) or (
        isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values())
    )


def _inline(value: dict[str, Any]) -> str:
    return "; ".join(f"{_words(k)}: {_scalar(v)}" for k, v in value.items())


def render_facts(data: Any, depth: int = 0) -> str:
    """A fact's data as readable lines ("• key: value", nested lists indented, long lists
    cut with a count), for the offline report: what a person reads instead of JSON."""
    pad = _INDENT * depth
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(value, dict | list):
                lines.append(f"{pad}• {_words(key)}: {_scalar(value)}")
            elif not value:
                lines.append(f"{pad}• {_words(key)}: none")
            elif isinstance(value, dict) and _is_flat(value):
                lines.append(f"{pad}• {_words(key)}: {_inline(value)}")
            else:
                lines.append(f"{pad}• {_words(key)}:")
                lines.append(render_facts(value, depth + 1))
    elif isinstance(data, list):
        for item in data[:_MAX_ITEMS]:
            if isinstance(item, dict) and _is_flat(item):
                lines.append(f"{pad}– {_inline(item)}")
            elif isinstance(item, dict | list):
                lines.append(f"{pad}–")
                lines.append(render_facts(item, depth + 1))
            else:
                lines.append(f"{pad}– {_scalar(item)}")
        if len(data) > _MAX_ITEMS:
            lines.append(f"{pad}… and {len(data) - _MAX_ITEMS} more")
    else:
        lines.append(f"{pad}{_scalar(data)}")
    text = "\n".join(lines)
    if depth == 0 and len(text) > _MAX_CHARS:
        text = text[: _MAX_CHARS - 1].rsplit("\n", 1)[0] + "\n…"
    return text


def render_offline(
    *, label: str, sections: list[str], context: dict[str, Any], lang: str = "fr"
) -> Completion:
    """The offline provider: the gathered facts as a structured report, saying so; its own
    sentences in ``lang`` (the report language; the facts come written in it)."""
    tr = get_translator(lang)
    facts: dict[str, dict[str, Any]] = context.get("facts", {})
    ok = [f for f in facts.values() if f.get("status") == "ok"]
    missing = [f for f in facts.values() if f.get("status") != "ok"]
    summary_parts = [tr.t("report.offline_summary", label=label)]
    summary_parts += [f["summary"] for f in ok]
    if missing:
        sources = ", ".join(
            tr.t("report.unavailable_source", title=f["title"], reason=f.get("reason"))
            for f in missing
        )
        summary_parts.append(tr.t("report.unavailable_sources", sources=sources))
    rendered = []
    for fact in facts.values():
        body = fact["summary"]
        if fact.get("status") == "ok" and fact.get("data"):
            body += "\n" + render_facts(fact["data"])
        rendered.append({"title": fact["title"], "content": body})
    return Completion(
        output={
            "executive_summary": " ".join(summary_parts),
            "sections": rendered
            or [{"title": tr.t("report.facts"), "content": tr.t("report.no_facts")}],
            "recommendations": [tr.t("report.configure_model", sections=", ".join(sections))],
            "risks": [
                tr.t("report.risk_unavailable", title=f["title"], reason=f.get("reason"))
                for f in missing
            ],
            "offline": True,
        },
        model_used=OFFLINE,
        provider=OFFLINE,
        price={"model": OFFLINE, "input_eur_per_mtok": 0.0, "output_eur_per_mtok": 0.0},
    )
