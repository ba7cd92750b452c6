"""Settings come from env and a TOML file, are validated, and guard production."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_overrides_file_and_kwargs_override_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vlmq.toml"
    config.write_text('max_new_tokens = 100\ntemperature = 0.2\n[prompts]\ndescribe = "Describe it briefly."\n')
    monkeypatch.setenv("VLMQ_CONFIG_FILE", str(config))
    monkeypatch.setenv("VLMQ_TEMPERATURE", "0.5")
    settings = Settings()
    assert settings.max_new_tokens == 100
    assert settings.temperature == 0.5
    assert settings.prompts == {"describe": "Describe it briefly."}
    assert Settings(temperature=0.1).temperature == 0.1


def test_bad_values_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VLMQ_TOP_P", "1.5")
    with pytest.raises(ValidationError, match="top_p"):
        Settings()
    monkeypatch.delenv("VLMQ_TOP_P")
    with pytest.raises(ValidationError, match="quantization"):
        Settings(quantization="int3")
    with pytest.raises(ValidationError, match="hard_time_limit"):
        Settings(task_soft_time_limit_s=100, task_hard_time_limit_s=50)
    with pytest.raises(ValueError, match="does not exist"):
        Settings(config_file=tmp_path / "missing.toml")


def test_production_refuses_auth_off_and_sqlite() -> None:
    postgres = "postgresql+psycopg://u@db/vlmq"
    with pytest.raises(ValidationError, match="auth_enabled"):
        Settings(environment="production", database_url=postgres)
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(environment="production", auth_enabled=True)
    assert Settings(environment="production", auth_enabled=True, database_url=postgres).auth_enabled


def test_redis_never_redelivers_a_running_task() -> None:
    settings = Settings()
    assert settings.broker_visibility_timeout_s > settings.task_hard_time_limit_s


def test_an_empty_admin_key_is_off_and_a_short_one_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMQ_ADMIN_KEY", "")  # what compose passes for an unset ${VLMQ_ADMIN_KEY:-}
    assert Settings().admin_key is None
    monkeypatch.setenv("VLMQ_ADMIN_KEY", "short")
    with pytest.raises(ValidationError, match="admin_key"):
        Settings()
