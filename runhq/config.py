"""The one settings tree of runhq (environment variables prefixed ``RUNHQ_``, ``.env`` read).

Every field has a description: ``runhq config`` prints them as the setup guide. Production
refuses insecure values at start-up rather than at the first request.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runhq.errors import ConfigurationError

_MIN_SECRET_LENGTH = 32


class ModelConfig(BaseModel):
    """How the gateway reaches one model name used by the registry."""

    provider: str = Field("openai-compatible", description="Provider label shown in run records.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL for this model; default RUNHQ_LLM_BASE_URL."
    )
    api_key: SecretStr | None = Field(
        None, description="API key for this model; default RUNHQ_LLM_API_KEY."
    )
    upstream_name: str | None = Field(
        None, description="Model name sent to the provider, when it differs from runhq's name."
    )
    input_eur_per_mtok: float = Field(ge=0, description="Price in EUR per million input tokens.")
    output_eur_per_mtok: float = Field(ge=0, description="Price in EUR per million output tokens.")


def _default_models() -> dict[str, ModelConfig]:
    # List prices converted to EUR (Nov 2026); override with RUNHQ_LLM_MODELS.
    return {
        "gemini-2.5-pro": ModelConfig(input_eur_per_mtok=1.15, output_eur_per_mtok=9.20),
        "gemini-2.5-flash": ModelConfig(input_eur_per_mtok=0.28, output_eur_per_mtok=2.30),
        "gemini-3-flash": ModelConfig(input_eur_per_mtok=0.46, output_eur_per_mtok=2.76),
    }


class Settings(BaseSettings):
    """runhq settings. Read from the environment (``RUNHQ_*``) and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="RUNHQ_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = Field(
        "development", description="development or production; production refuses unsafe values."
    )
    data_dir: Path = Field(
        Path.home() / ".runhq",
        description="Directory for the SQLite database, the generated secret key and backups.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…). "
        "Default: a SQLite file in the data directory.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key signing JWTs (>= 32 chars). Development generates one in the data "
        "directory; production requires it.",
    )
    timezone: str = Field(
        "Europe/Paris",
        description="Business time zone: the months of cost reports and budgets. "
        "Schedules carry their own time zone.",
    )
    report_language: Literal["fr", "en"] = Field(
        "fr",
        description="Language of what runhq writes into run reports: the facts' titles and "
        "summaries, the offline report, and the language the model is asked to write in. "
        "The dashboard's own language is each visitor's choice.",
    )
    executor: Literal["local", "celery"] = Field(
        "local",
        description="Where runs execute. local: a thread pool in the server process; "
        "celery: `runhq worker` processes fed through RUNHQ_BROKER_URL.",
    )
    worker_threads: int = Field(
        4, ge=1, le=64, description="Runs executed at once by one server (local) or worker."
    )
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Celery broker for RUNHQ_EXECUTOR=celery: redis://… or amqp://… (RabbitMQ).",
    )
    broker_visibility_timeout_seconds: int = Field(
        3600,
        ge=10,
        description="Redis broker: an unacknowledged task is redelivered after this long "
        "(a redelivered run that is no longer queued is ignored).",
    )
    heartbeat_seconds: float = Field(
        10.0, gt=0, description="How often a worker records that a running run is alive."
    )
    heartbeat_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="A running run with no heartbeat for this long is failed "
        "by the reaper (worker lost).",
    )
    redispatch_after_seconds: float = Field(
        120.0,
        gt=0,
        description="A queued run the broker accepted but no worker claimed "
        "is sent again after this long (duplicates are harmless).",
    )
    scheduler_tick_seconds: float = Field(
        5.0, gt=0, description="How often the scheduler looks for due work."
    )
    scheduler_lease_seconds: float = Field(
        30.0, gt=0, description="Leader lease length: a dead leader is replaced within this."
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="The URL people reach runhq at (unsubscribe links in campaign emails; "
        "RFC 8058 one-click needs https).",
    )
    smtp_host: str | None = Field(None, description="SMTP server for MASS_EMAIL_CAMPAIGN.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port (587: submission).")
    smtp_username: str | None = Field(None, description="SMTP login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(True, description="Require STARTTLS before login and mail.")
    smtp_sender: str | None = Field(None, description="From address of campaign emails.")
    smtp_ca_file: Path | None = Field(
        None, description="CA bundle to trust for the SMTP server (default: the system's)."
    )
    approval_ttl_hours: float = Field(
        24.0, gt=0, description="An approval of an action run's plan expires after this."
    )
    release_gate_max_age_hours: float = Field(
        24.0,
        gt=0,
        description="DEPLOY_TO_PRODUCTION needs a passed RELEASE_GATE_CHECK of "
        "the platform this recent.",
    )
    autopilot_interval_minutes: int = Field(
        5, ge=1, le=1440, description="Default wake-up interval of the autopilot (seed: 5 min)."
    )
    registry_path: Path | None = Field(
        None, description="Override of the run-type registry file (default: the shipped one)."
    )
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL. With no URL and no key: offline provider."
    )
    llm_api_key: SecretStr | None = Field(None, description="API key for RUNHQ_LLM_BASE_URL.")
    llm_models: dict[str, ModelConfig] = Field(
        default_factory=_default_models,
        description="JSON map model name → {base_url, api_key, upstream_name, prices in EUR}.",
    )
    llm_timeout_seconds: float = Field(60.0, gt=0, description="Timeout of one model call.")
    llm_max_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per model on 429/5xx/timeouts before the fallback."
    )
    llm_retry_base_seconds: float = Field(
        1.0, ge=0, description="First backoff wait between model attempts (doubles each time)."
    )
    llm_retry_max_seconds: float = Field(20.0, ge=0, description="Longest backoff wait.")
    stuck_after_minutes: int = Field(
        15, ge=1, description="A run 'running' longer than this is stuck (seed 001: 15 min)."
    )
    log_retention_days: int = Field(
        30, ge=1, description="Structured logs older than this are purged (seed 001: 30 days)."
    )
    health_check_retention_days: int = Field(
        90,
        ge=31,
        description="Platform health-check results older than this are purged (uptime is "
        "shown over 30 days at most; incidents are kept).",
    )
    jwt_ttl_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="Lifetime of a JWT.")
    login_max_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed password logins allowed for one email within the login window; "
        "then its logins are refused (429) until the window has passed.",
    )
    login_max_failures_per_address: int = Field(
        30,
        ge=1,
        le=100_000,
        description="Failed password logins allowed from one IP address within the login "
        "window, whatever the emails (password spraying); then refused (429).",
    )
    login_window_minutes: int = Field(
        15, ge=1, le=24 * 60, description="The window the login throttle counts failures in."
    )
    session_ttl_minutes: int = Field(
        720,
        ge=5,
        le=7 * 24 * 60,
        description="Lifetime of a dashboard login (the session cookie); then log in again.",
    )
    dashboard_kpi_timeout_seconds: float = Field(
        4.0,
        gt=0,
        le=60,
        description="Longest wait for Stripe while rendering the Briefing Room's MRR card "
        "(one attempt); a slower answer shows 'Service unavailable'.",
    )
    dashboard_kpi_cache_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="How long the Briefing Room reuses the MRR read from Stripe "
        "(a failure is retried after at most 60 s; 0: read on every page).",
    )
    stripe_api_key: SecretStr | None = Field(None, description="Stripe secret key (MRR facts).")
    stripe_base_url: str = Field("https://api.stripe.com", description="Stripe API base URL.")
    github_token: SecretStr | None = Field(None, description="GitHub token (repository facts).")
    github_repository: str | None = Field(None, description="owner/name watched on GitHub.")
    github_api_url: str = Field("https://api.github.com", description="GitHub API base URL.")
    web_search_api_key: SecretStr | None = Field(None, description="Brave Search API key.")
    web_search_base_url: str = Field(
        "https://api.search.brave.com", description="Brave Search API base URL."
    )
    connector_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one call to an external fact source."
    )

    @field_validator("llm_models", mode="after")
    @classmethod
    def _merge_default_models(cls, value: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        # A partial RUNHQ_LLM_MODELS adds or overrides models; it does not drop the defaults.
        return {**_default_models(), **value}

    @model_validator(mode="after")
    def _enforce_production_safety(self) -> Settings:
        if self.env != "production":
            return self
        problems: list[str] = []
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < _MIN_SECRET_LENGTH or key in {"changeme", "secret", "dev"}:
            problems.append(
                f"RUNHQ_SECRET_KEY must be set to a random value of at least "
                f"{_MIN_SECRET_LENGTH} characters (python -c 'import secrets; "
                f"print(secrets.token_urlsafe(48))')"
            )
        if (
            self.llm_base_url
            and self.llm_base_url.startswith("http://")
            and not any(host in self.llm_base_url for host in ("127.0.0.1", "localhost", "[::1]"))
        ):
            problems.append("RUNHQ_LLM_BASE_URL must use https in production")
        if problems:
            raise ValueError("insecure production settings: " + "; ".join(problems))
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'runhq.db'}"

    @property
    def llm_configured(self) -> bool:
        """A model provider is configured: otherwise runs use the offline provider."""
        return bool(self.llm_base_url or self.llm_api_key)

    def get_secret_key(self) -> str:
        """The JWT signing key; in development one is generated once in the data directory."""
        if self.secret_key:
            return self.secret_key.get_secret_value()
        if self.env == "production":  # unreachable after validation; kept as a hard stop
            raise ConfigurationError("RUNHQ_SECRET_KEY is required in production")
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, validated once (start-up fails on bad values)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = (
                "RUNHQ_" + "_".join(str(p) for p in err["loc"][:1]).upper() if err["loc"] else ""
            )
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{field}: {message}" if field else message)
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
