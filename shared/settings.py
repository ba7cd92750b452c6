"""Typed settings for every vlmq process.

Values come, highest first, from explicit keyword arguments (tests), `VLMQ_*`
environment variables, then an optional TOML config file named by
`config_file=` or `VLMQ_CONFIG_FILE`. Nothing is read at import time: call
`Settings()` when a process starts.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shared.log_format import LogFormat
from shared.product_schema import DEFAULT_ATTRIBUTES_BUDGET, DEFAULT_PRODUCT_SCHEMA
from shared.request_rules import MAX_NEW_TOKENS
from shared.schema_plan import compile_schema

Quantization = Literal["auto", "nf4", "int8", "bf16", "fp32"]
ModelFamily = Literal["auto", "glm4v_9b", "glm4v", "image_text"]


class Settings(BaseSettings):
    """Everything a vlmq process may be configured with."""

    model_config = SettingsConfigDict(env_prefix="VLMQ_", extra="forbid", frozen=True)

    config_file: Path | None = None
    environment: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Path(".vlmq")
    # Issue 9: `json` writes one JSON object per log line, with the request id (shared/log_format.py).
    log_format: LogFormat = "text"

    # Storage and broker.
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"

    # HTTP API.
    public_url: str | None = None
    # Issue 12: the address `vlmq up` serves on, set by it for the processes it starts, so that links in
    # webhook bodies point at it when `public_url` is unset (shared/public_url.py decides).
    served_url: str | None = None
    # Host names requests may name in `Host`; others get 400 (empty: any, but only loopback and the hosts of
    # `public_url` and `served_url` appear in links: shared/public_url.py).
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    # Reverse proxies in front that append the client's address to X-Forwarded-For (and set X-Forwarded-Proto);
    # 0 trusts neither header, which any client can write (per-address rate limits use the address).
    trusted_proxies: int = Field(0, ge=0, le=5)
    auth_enabled: bool = False
    # How long the web server keeps an idle client connection open: above the idle times clients and proxies
    # pool connections for (gunicorn's 2 s reset them); a proxy in front must idle out first (deploy/Caddyfile).
    keepalive_s: int = Field(75, ge=1, le=3600)
    # Issue 8: the bearer token a Prometheus scraper sends for whole-service metrics.
    metrics_token: str | None = Field(None, min_length=16)
    # Issue 9: the bearer key of the admin API (`/v1/admin/...`); unset, that API is not served (404).
    admin_key: str | None = Field(None, min_length=24)
    max_image_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(40_000_000, gt=0)
    max_wait_s: float = Field(60.0, ge=0)
    # Issue 9: `Prefer: wait` requests one web process holds at once (each holds a thread); the rest get 202 at once.
    max_waiting_requests: int = Field(8, ge=0)
    # Requests the reverse proxy stamped (X-Request-Start) longer ago than this are shed with 503; 0: never.
    max_queue_ms: int = Field(500, ge=0)
    default_page_size: int = Field(50, ge=1, le=500)
    max_batch_items: int = Field(500, ge=1, le=10_000)
    # The whole `POST /v1/batches` body (other routes are sized for one image).
    max_batch_bytes: int = Field(100 * 1024 * 1024, gt=0)
    # Issue 8: an `ask` question plus its earlier turns (the prompt-size estimate, ~1 token per character).
    max_conversation_chars: int = Field(24_000, ge=1000, le=500_000)
    # Issue 8: per-tenant request rate over all /v1 routes (limits syntax, e.g. "20/second;600/minute"),
    # and quotas on what a tenant may have waiting or running.
    rate_limit: str = "20/second;600/minute"
    max_queued_jobs_per_tenant: int = Field(2000, ge=1)
    max_queued_image_bytes_per_tenant: int = Field(512 * 1024 * 1024, ge=1024)

    # Job execution.
    max_attempts: int = Field(3, ge=1, le=20)
    task_soft_time_limit_s: int = Field(600, ge=10)
    task_hard_time_limit_s: int = Field(660, ge=15)
    heartbeat_interval_s: float = Field(5.0, gt=0)
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    requeue_after_s: float = Field(30.0, ge=0)
    # Issue 9: how long a worker keeps trying to record a finished job's outcome while the database is down.
    result_write_retry_s: float = Field(300.0, ge=0)
    sweep_interval_s: float = Field(15.0, gt=0)
    # Issue 8: retention, enforced by the sweeper. Follow-up questions need their image, so they
    # work within the image retention.
    image_retention_s: float = Field(24 * 3600, ge=0)
    result_retention_s: float = Field(30 * 24 * 3600, ge=0)
    # Issue 9: the audit log is kept at least six months by default.
    audit_retention_s: float = Field(183 * 24 * 3600, ge=0)

    # Inference.
    model: str | None = None
    model_family: ModelFamily = "auto"
    quantization: Quantization = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    trust_remote_code: bool = False
    max_new_tokens: int = Field(256, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.05, ge=1.0, le=2.0)
    image_max_side: int = Field(1024, ge=28, le=4096)
    redact_pii: bool = True
    prompts: dict[str, str] = Field(default_factory=dict)

    # GPU batching (GLM-4.1V/4.6V): jobs running at once on one worker and what each may use.
    gpu_engine: Literal["auto", "batched", "sequential"] = "auto"
    gpu_max_batch: int = Field(64, ge=1, le=1024)
    gpu_max_seq_tokens: int = Field(3072, ge=256, le=131072)
    gpu_prefill_tokens: int = Field(8192, ge=256, le=131072)
    gpu_memory_gib: float | None = Field(None, gt=0)
    # Slots only chat completions and `Prefer: wait` jobs may take (worker.interactive_lane).
    gpu_interactive_slots: int = Field(2, ge=0, le=64)
    # Issue 13: attribute jobs finish inside their token budget.
    # max_new_tokens of `attributes` jobs that do not set their own; sized with the
    # default product schema's bounds (shared/product_schema.py).
    attributes_max_new_tokens: int = Field(DEFAULT_ATTRIBUTES_BUDGET, ge=1, le=MAX_NEW_TOKENS)

    # Images given by URL (`image_url`) are downloaded by the web server at submit time.
    image_url_allow_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    image_fetch_timeout_s: float = Field(10.0, gt=0, le=120)
    # Issue 8: how many `image_url` items of one batch are downloaded at once.
    image_fetch_concurrency: int = Field(8, ge=1, le=64)

    # Webhooks.
    webhook_secret: str | None = Field(None, pattern=r"^whsec_[A-Za-z0-9+/]{16,}={0,2}$")
    webhook_allow_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    webhook_retry_window_s: float = Field(3 * 24 * 3600, gt=0)
    webhook_retry_base_s: float = Field(10.0, gt=0)
    webhook_retry_max_delay_s: float = Field(6 * 3600, gt=0)
    webhook_connect_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_read_timeout_s: float = Field(15.0, gt=0, le=120)
    webhook_lease_s: float = Field(120.0, gt=0)
    webhook_max_per_endpoint: int = Field(4, ge=1, le=100)
    # Issue 8: one tenant's slow endpoints hold at most this many light-worker threads.
    webhook_max_per_tenant: int = Field(4, ge=1, le=100)
    # Issue 20: ...and its endpoints that failed lately share this many, apart from its healthy ones.
    webhook_max_per_tenant_failing: int = Field(1, ge=1, le=100)
    webhook_poll_interval_s: float = Field(5.0, gt=0)
    webhook_secret_rotation_s: float = Field(24 * 3600, ge=0)

    @field_validator("webhook_allow_hosts", "image_url_allow_hosts", "allowed_hosts", mode="before")
    @classmethod
    def _split_allow_hosts(cls, value: Any) -> Any:
        """`VLMQ_WEBHOOK_ALLOW_HOSTS=hooks.internal,10.0.0.0/8` (and `VLMQ_ALLOWED_HOSTS`) is a comma-separated list."""
        entries = tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value
        for entry in entries:
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)  # a typo in a network must not silently allow nothing
        return entries

    @field_validator("admin_key", "metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`VLMQ_ADMIN_KEY=` (as compose passes an unset variable) means off, not a too-short key."""
        return None if value == "" else value

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        """A typo must stop start-up, not silently disable the limit."""
        limits.parse_many(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the TOML file named by `config_file` (kwarg or env) below env vars."""
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        path = init_kwargs.get("config_file") or os.environ.get("VLMQ_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            if not Path(path).is_file():
                raise ValueError(f"config file {path} does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.task_hard_time_limit_s <= self.task_soft_time_limit_s:
            raise ValueError("task_hard_time_limit_s must exceed task_soft_time_limit_s")
        if self.webhook_lease_s <= self.webhook_connect_timeout_s + self.webhook_read_timeout_s:
            raise ValueError("webhook_lease_s must exceed webhook_connect_timeout_s + webhook_read_timeout_s")
        smallest = len(compile_schema(DEFAULT_PRODUCT_SCHEMA).minimal)
        if self.attributes_max_new_tokens < smallest:
            raise ValueError(
                f"attributes_max_new_tokens must be at least {smallest}: the smallest answer of the default schema"
            )
        if self.environment == "production":
            if not self.auth_enabled:
                raise ValueError("production refuses to start with auth_enabled=false")
            if self.database_url is None or self.database_url.startswith("sqlite"):
                raise ValueError("production needs VLMQ_DATABASE_URL pointing at PostgreSQL")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vlmq.db').resolve()}"

    @property
    def tiny_model_dir(self) -> Path:
        """Where the offline random-weight checkpoint lives when no model is set."""
        return (self.data_dir / "models" / "tiny-glm4v").resolve()

    @property
    def uses_placeholder_model(self) -> bool:
        """True when no real model is configured: outputs are noise."""
        return self.model is None

    @property
    def broker_visibility_timeout_s(self) -> int:
        """Redis must not redeliver a message while its task may still run."""
        return self.task_hard_time_limit_s * 2 + 60
