"""The delivery log of a job, as the API and the job page show it."""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.job_view import Timestamp, iso_utc
from shared.models import WebhookAttempt, WebhookDelivery
from shared.webhooks.outbox import DeliveryStatus, JobEvent


def job_deliveries(session: Session, job_id: str) -> list[DeliveryView]:
    """Every delivery of the job, oldest first, each with its attempts."""
    deliveries = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.id)
    ).all()
    attempts: dict[str, list[WebhookAttempt]] = defaultdict(list)
    if deliveries:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [delivery_view(delivery, attempts[delivery.id]) for delivery in deliveries]


class AttemptView(BaseModel):
    number: int
    at: Timestamp
    status_code: int | None
    error: str | None
    duration_ms: int | None
    response: str | None = Field(description="the start of the receiver's answer")


class DeliveryView(BaseModel):
    """One delivery: its `webhook-id`, where it goes, how it went and what happens next."""

    id: str = Field(description="the webhook-id header, the same on every attempt")
    event: JobEvent
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    created_at: Timestamp
    delivered_at: Timestamp | None
    log: list[AttemptView]


def delivery_view(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryView:
    """One delivery with its attempts."""
    return DeliveryView(
        id=delivery.id,
        event=delivery.event_type,  # type: ignore[arg-type]
        url=delivery.url,
        status=DeliveryStatus(delivery.status),
        attempts=delivery.attempts,
        next_attempt_at=iso_utc(delivery.next_attempt_at) if delivery.status == DeliveryStatus.PENDING else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=iso_utc(delivery.created_at),
        delivered_at=iso_utc(delivery.delivered_at),
        log=[
            AttemptView(
                number=attempt.number,
                at=iso_utc(attempt.attempted_at),
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                response=attempt.response_excerpt,
            )
            for attempt in attempts
        ],
    )
