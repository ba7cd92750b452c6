"""One webhook attempt: claim the outbox row, check the URL again, sign, POST, record.

Runs only on the webhook worker (the `webhooks` queue); GPU workers write outbox rows
and never send. The claim is a conditional UPDATE that leases the row, so two messages
for one delivery cannot send it twice at once, and a worker killed between sending and
recording leaves a lease that runs out: `dispatch_due` then sends it again under the same
`webhook-id`, and the receiver deduplicates.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from shared import log_context, telemetry
from shared.ids import new_id
from shared.models import Job, WebhookAttempt, WebhookDelivery
from shared.settings import Settings
from shared.ssrf import AllowList, UnsafeUrl, check_webhook_url
from shared.webhooks.enqueue import enqueue_delivery
from shared.webhooks.outbox import DeliveryStatus
from worker.context import WorkerContext
from worker.webhooks import endpoint_health, endpoint_slots, http_post
from worker.webhooks.body import render_body
from worker.webhooks.schedule import RETRY_AFTER_STATUSES, backoff_s, retry_after_s
from worker.webhooks.signing import signed_headers, signing_secrets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Claimed:
    url: str
    body: bytes
    secrets: list[str]
    attempt: int
    persistent: bool
    deadline: datetime


def deliver(ctx: WorkerContext, delivery_id: str, now: datetime) -> str:
    """Make one attempt at a due delivery; returns what happened, for logs and tests."""
    with ctx.sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return "missing"
        if delivery.status != DeliveryStatus.PENDING or delivery.next_attempt_at is None:
            return "done"
        if delivery.next_attempt_at > now or (delivery.lease_until is not None and delivery.lease_until > now):
            return "not_due"
        url, tenant_id, job_id = delivery.url, delivery.tenant_id, delivery.job_id
        request_id = session.scalar(select(Job.request_id).where(Job.id == job_id)) if job_id else None
    with log_context.bound(request_id, job_id):
        return _deliver_claimed(ctx, delivery_id, url, tenant_id, now)


def _deliver_claimed(ctx: WorkerContext, delivery_id: str, url: str, tenant_id: str, now: datetime) -> str:
    """Attempt under a slot of the endpoint and of the tenant's pool; with none free, park until one is."""
    settings = ctx.settings
    token = secrets.token_hex(8)
    endpoint = endpoint_slots.endpoint_key(url)
    failing = endpoint_health.is_failing(ctx.redis, endpoint)
    tenant_limit = settings.webhook_max_per_tenant_failing if failing else settings.webhook_max_per_tenant
    slots = [
        (endpoint_slots.tenant_key(tenant_id, failing), tenant_limit),
        (endpoint, settings.webhook_max_per_endpoint),
    ]
    held: list[str] = []
    try:
        for key, limit in slots:
            lease = settings.webhook_lease_s
            if not endpoint_slots.acquire(ctx.redis, key, token, limit, now.timestamp(), lease, delivery_id):
                return "busy"  # parked: the release of a slot here sends its message again
            held.append(key)
        with ctx.sessions.begin() as session:
            claimed = _claim(session, settings, delivery_id, now)
        if claimed is None:
            return "skipped"
        outcome = _attempt(claimed, settings, delivery_id, now)
        endpoint_health.record(ctx.redis, endpoint, outcome.ok)
        with ctx.sessions.begin() as session:
            result = _record(session, settings, delivery_id, claimed, outcome, now)
        # The URL stays out: a receiver may put its token in the query string.
        log.info("webhook %s attempt %d: %s", delivery_id, claimed.attempt, result)
        telemetry.count(ctx.redis, telemetry.WEBHOOK_DELIVERIES, (result,))
        return result
    finally:
        for key in held:
            if (woken := endpoint_slots.release(ctx.redis, key, token)) is not None:
                enqueue_delivery(ctx.celery, ctx.sessions, woken)


def _claim(session: Session, settings: Settings, delivery_id: str, now: datetime) -> _Claimed | None:
    """Lease a due pending delivery for one attempt; None when another worker has it or it is not due."""
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now),
            # A progress event gets one attempt, even when the worker making it died.
            or_(WebhookDelivery.persistent.is_(True), WebhookDelivery.attempts == 0),
        )
        .values(lease_until=now + timedelta(seconds=settings.webhook_lease_s), attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    if result.rowcount != 1:
        _give_up_abandoned_progress_event(session, delivery_id, now)
        return None
    delivery = session.get_one(WebhookDelivery, delivery_id, populate_existing=True)
    window_end = delivery.created_at + timedelta(seconds=settings.webhook_retry_window_s)
    return _Claimed(
        url=delivery.url,
        body=render_body(delivery.payload, settings),
        secrets=signing_secrets(session, settings, delivery.tenant_id, now),
        attempt=delivery.attempts,
        persistent=delivery.persistent,
        deadline=delivery.expires_at or window_end,
    )


def _give_up_abandoned_progress_event(session: Session, delivery_id: str, now: datetime) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.persistent.is_(False),
            WebhookDelivery.attempts > 0,
            WebhookDelivery.lease_until <= now,
        )
        .values(status=DeliveryStatus.FAILED.value, lease_until=None, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


def _attempt(claimed: _Claimed, settings: Settings, delivery_id: str, now: datetime) -> http_post.HttpOutcome:
    try:
        target = check_webhook_url(claimed.url, AllowList.parse(settings.webhook_allow_hosts))
    except UnsafeUrl as exc:
        return http_post.HttpOutcome(None, f"refused: {exc}", None, None, 0)
    headers = signed_headers(claimed.secrets, delivery_id, int(now.timestamp()), claimed.body)
    return http_post.post(
        target, headers, claimed.body, settings.webhook_connect_timeout_s, settings.webhook_read_timeout_s
    )


def _record(
    session: Session,
    settings: Settings,
    delivery_id: str,
    claimed: _Claimed,
    outcome: http_post.HttpOutcome,
    now: datetime,
) -> str:
    """Log the attempt and decide what comes next: done, a retry at a time, or giving up."""
    session.add(
        WebhookAttempt(
            id=new_id("wha"),
            delivery_id=delivery_id,
            number=claimed.attempt,
            attempted_at=now,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error,
            response_excerpt=outcome.excerpt,
        )
    )
    values: dict[str, Any] = {
        "lease_until": None,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if outcome.ok:
        values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now, next_attempt_at=None)
    elif (reason := _final_failure(claimed, outcome)) is not None:
        values.update(status=DeliveryStatus.FAILED.value, next_attempt_at=None, last_error=reason)
    else:
        delay = None
        if outcome.status_code in RETRY_AFTER_STATUSES:
            delay = retry_after_s(outcome.retry_after, now)
        if delay is None:
            delay = backoff_s(claimed.attempt, settings.webhook_retry_base_s, settings.webhook_retry_max_delay_s)
        next_at = now + timedelta(seconds=delay)
        if next_at > claimed.deadline:
            reason = f"{_failure_text(outcome)}; gave up: the retry window ended at {claimed.deadline.isoformat()}"
            values.update(status=DeliveryStatus.FAILED.value, next_attempt_at=None, last_error=reason)
        else:
            values.update(next_attempt_at=next_at, dispatched_at=None)
    # Only the attempt that holds the claim may move the row on.
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == claimed.attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return values.get("status", "retrying")


def _final_failure(claimed: _Claimed, outcome: http_post.HttpOutcome) -> str | None:
    if outcome.status_code == 410:
        return "the endpoint answered 410 Gone: no more attempts"
    if not claimed.persistent:
        return f"{_failure_text(outcome)}; progress events are sent once"
    return None


def _failure_text(outcome: http_post.HttpOutcome) -> str:
    return outcome.error or f"the endpoint answered {outcome.status_code}"
