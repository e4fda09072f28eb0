"""Settings: validated at start-up, production refuses insecure values."""

from __future__ import annotations

from pathlib import Path

import pytest

from runhq.config import Settings, get_settings
from runhq.errors import ConfigurationError


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_every_field_has_a_description() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_production_refuses_a_missing_or_weak_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RUNHQ_SECRET_KEY"):
        _settings(env="production", data_dir=tmp_path)
    with pytest.raises(ValueError, match="RUNHQ_SECRET_KEY"):
        _settings(env="production", data_dir=tmp_path, secret_key="changeme")
    with pytest.raises(ValueError, match="https"):
        _settings(env="production", secret_key="k" * 40, llm_base_url="http://llm.example.com/v1")
    ok = _settings(env="production", secret_key="k" * 40, llm_base_url="https://llm.example.com/v1")
    assert ok.get_secret_key() == "k" * 40


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    first = _settings(data_dir=tmp_path).get_secret_key()
    assert len(first) >= 32
    assert _settings(data_dir=tmp_path).get_secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_partial_model_map_keeps_the_defaults() -> None:
    s = _settings(llm_models={"house": {"input_eur_per_mtok": 1, "output_eur_per_mtok": 2}})
    assert {"house", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-flash"} <= set(s.llm_models)


def test_bad_environment_is_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _start_up_error(monkeypatch, RUNHQ_WORKER_THREADS="lots", RUNHQ_ENV="staging")
    assert "RUNHQ_WORKER_THREADS" in message
    assert "RUNHQ_ENV" in message
    assert "\n" not in message


def test_offline_unless_a_model_is_configured() -> None:
    assert not _settings().llm_configured
    assert _settings(llm_base_url="http://127.0.0.1:1/v1").llm_configured


def test_an_unknown_report_language_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = _start_up_error(monkeypatch, RUNHQ_REPORT_LANGUAGE="de")
    assert "RUNHQ_REPORT_LANGUAGE" in message
    assert "'fr' or 'en'" in message


def _start_up_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The message start-up refuses these environment variables with."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    return info.value.message
