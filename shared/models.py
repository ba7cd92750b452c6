"""SQLAlchemy 2 models: the job row is the source of truth for every job.

The schema itself is built by Alembic migrations (`migrations/`), never by
`create_all`; these classes must stay in step with the newest revision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.states import JobStatus


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Tenant(Base):
    """A shop (or team) whose API keys see only its own jobs."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    # The endpoint for jobs submitted without their own `webhook`, and the secret that signs deliveries.
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(String(100))


class ApiKey(Base):
    """A bearer key, stored only as its SHA-256 hash."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Refused from then on (also how a rotation's grace period ends the old key).
    expires_at: Mapped[datetime | None]
    # Written at most once a minute per key (`shared.auth.LAST_USED_RESOLUTION`), not on every request.
    last_used_at: Mapped[datetime | None]


class StoredImage(Base):
    """Uploaded image bytes, kept in the database so any worker host can read them."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("tenant_id", "sha256", name="uq_images_tenant_sha256"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    # Set when retention emptied `data` (the row stays: jobs keep pointing at it).
    purged_at: Mapped[datetime | None]


class Job(Base):
    """One request to the model about one image."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
        Index("ix_jobs_status_enqueued_at", "status", "enqueued_at"),
        Index("ix_jobs_batch_id_batch_index", "batch_id", "batch_index"),
        Index("ix_jobs_batch_id_status", "batch_id", "status"),
        Index("ix_jobs_tenant_id_status", "tenant_id", "status"),
        Index("ix_jobs_status_completed_at", "status", "completed_at"),
        Index("ix_jobs_image_id", "image_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    task: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]]
    model: Mapped[str] = mapped_column(String(300))
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
    parent_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    batch_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # The job's position in its batch's submission, so results come back in that order.
    batch_index: Mapped[int | None] = mapped_column(Integer)
    # A caller is waiting (chat, `Prefer: wait`): sent to the queue GPU workers drain first.
    interactive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    # The uploaded file's name (or a JSON batch item's `name`), so results can be matched to files.
    source_name: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the request that carried the key, so a reused key with another body is refused.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress_tokens: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(200))
    # The X-Request-ID of the request that made the job: its worker and webhook log lines carry it.
    request_id: Mapped[str | None] = mapped_column(String(128))
    inference_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # Set when retention removed the result.
    purged_at: Mapped[datetime | None]


class RetiredWebhookSecret(Base):
    """A replaced signing secret that still signs until `expires_at`, so receivers can switch over."""

    __tablename__ = "retired_webhook_secrets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    secret: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written in the transaction of the change it reports.

    Its id is the `webhook-id` header, the same on every attempt. `persistent` events are retried
    until `expires_at`; the others get one attempt.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]]
    persistent: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # Retries stop here; None means `created_at` + the configured window.
    expires_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One HTTP request of a delivery, for the delivery log."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)


class Batch(Base):
    """Many jobs submitted in one request; `completed_at` is set once, by the last job's terminal transition."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_batches_tenant_idempotency_key"),
        Index("ix_batches_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    task: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # Where `batch.completed` goes; None means the tenant's default endpoint.
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    # Set by `POST /v1/batches/{id}/cancel`, so an ended batch says it was canceled rather than completed.
    canceled_at: Mapped[datetime | None]


class Feedback(Base):
    """A person's verdict on a job's output: a 1-5 score, corrected fields and a comment; the newest counts."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_job_id_id", "job_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    score: Mapped[int] = mapped_column(Integer)
    corrections: Mapped[dict[str, Any]]
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class OpenAIFile(Base):
    """A file uploaded through OpenAI's `POST /v1/files` (purpose `batch`: JSONL of requests)."""

    __tablename__ = "openai_files"
    __table_args__ = (Index("ix_openai_files_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class OpenAIBatch(Base):
    """An OpenAI Batch API batch: its requests run as the jobs of one vlmq batch (`batch_id`).

    `custom_ids[k]` names the request that became the job with `batch_index` k; output and
    error files are rendered from those jobs when read, never stored.
    """

    __tablename__ = "openai_batches"
    __table_args__ = (Index("ix_openai_batches_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    input_file_id: Mapped[str] = mapped_column(ForeignKey("openai_files.id"))
    endpoint: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    custom_ids: Mapped[list[str]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime]
    cancelling_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what to which object, and when; written in the transaction of the action it records."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id_id", "tenant_id", "id"),
        Index("ix_audit_events_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    # A key id (`key_...`), `admin` (the admin API), `cli` (the `vlmq` command) or `anonymous` (auth off).
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
