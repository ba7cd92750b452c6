"""The webhook outbox: delivery rows written in the transaction of the change they report.

A job transition that moved the job calls `record_job_event` before its caller
commits, so the event exists exactly when the status change does: a crash can lose
neither one without the other. The same holds for `record_batch_event` and the
batch's completion. Sending happens later, from the webhook worker (`worker.webhooks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, get_args

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.batch_view import render_batch
from shared.ids import new_id
from shared.job_view import iso_utc, job_to_dict
from shared.models import Batch, Job, Tenant, WebhookDelivery

# The events a job reports (a new one starts here) and the one a batch reports.
JobEvent = Literal["job.started", "job.completed"]
JOB_STARTED, JOB_COMPLETED = get_args(JobEvent)
BATCH_COMPLETED = "batch.completed"
# What a client may put in `webhook_events`: the event names without `job.`.
WebhookEventFilter = Literal["started", "completed"]
JOB_EVENT_FILTERS: tuple[str, ...] = get_args(WebhookEventFilter)
# Terminal events are retried for the whole window; progress events get one attempt.
PERSISTENT_EVENTS = frozenset({JOB_COMPLETED, BATCH_COMPLETED})


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def record_job_event(session: Session, job_id: str, event_type: str, now: datetime) -> WebhookDelivery | None:
    """Add the outbox row for `event_type` of a job that just moved; None when no endpoint wants it."""
    return next(iter(record_job_events(session, [job_id], event_type, now)), None)


def record_job_events(
    session: Session, job_ids: Sequence[str], event_type: str, now: datetime
) -> list[WebhookDelivery]:
    """Add the outbox rows for `event_type` of jobs that just moved (one query, one flush), for those
    whose endpoint wants it."""
    jobs = session.scalars(
        select(Job).where(Job.id.in_(job_ids)).order_by(Job.id).execution_options(populate_existing=True)
    ).all()
    tenant_urls: dict[str, str | None] = {}
    deliveries = []
    for job in jobs:
        if job.webhook_url is None and job.tenant_id not in tenant_urls:
            tenant_urls[job.tenant_id] = session.scalar(select(Tenant.webhook_url).where(Tenant.id == job.tenant_id))
        url = job.webhook_url or tenant_urls[job.tenant_id]
        if url is None or event_type.removeprefix("job.") not in (job.webhook_events or JOB_EVENT_FILTERS):
            continue
        # Links stay relative here (transitions know no settings); `worker.webhooks.body` makes them absolute.
        deliveries.append(_delivery(job.tenant_id, url, event_type, job_to_dict(job, ""), now, job_id=job.id))
    session.add_all(deliveries)
    session.flush()
    return deliveries


def record_batch_completed(session: Session, batch_id: str, now: datetime) -> WebhookDelivery | None:
    """Add the `batch.completed` outbox row of a batch that just completed; None when it has no endpoint.

    `webhook_events` filters job events only: a batch with an endpoint always reports its completion.
    """
    batch = session.execute(
        select(Batch).where(Batch.id == batch_id).execution_options(populate_existing=True)
    ).scalar_one()
    url = batch.webhook_url or session.scalar(select(Tenant.webhook_url).where(Tenant.id == batch.tenant_id))
    if url is None:
        return None
    data = render_batch(session, batch, "")
    delivery = _delivery(batch.tenant_id, url, BATCH_COMPLETED, data, now, batch_id=batch.id)
    session.add(delivery)
    session.flush()
    return delivery


def _delivery(
    tenant_id: str,
    url: str,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("msg"),
        tenant_id=tenant_id,
        job_id=job_id,
        batch_id=batch_id,
        event_type=event_type,
        url=url,
        payload={"type": event_type, "timestamp": iso_utc(now), "data": data},
        persistent=event_type in PERSISTENT_EVENTS,
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def redeliver(session: Session, delivery: WebhookDelivery, retry_window_s: float, now: datetime) -> None:
    """Send a delivery again, under the same `webhook-id`, retried for a fresh window.

    An attempt in flight keeps its lease; the delivery is due again when it ends.
    """
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id)
        .values(
            status=DeliveryStatus.PENDING.value,
            persistent=True,
            next_attempt_at=now,
            expires_at=now + timedelta(seconds=retry_window_s),
            dispatched_at=None,
        )
        .execution_options(synchronize_session=False)
    )
