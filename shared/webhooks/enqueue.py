"""Sending delivery messages to the webhook queue, after the outbox rows are committed.

The message only says "look at delivery X"; the row decides whether and when to
send. So a lost message (Redis restarted, the enqueue failed, a webhook worker was
killed mid-send) costs only time: `worker.webhooks.due.dispatch_due`, run by beat on
the webhook worker, sends a fresh message for every due delivery that has none.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.after_commit import send_after_commit
from shared.celery_app import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE
from shared.clock import utcnow
from shared.models import Job, WebhookDelivery
from shared.webhooks.outbox import DeliveryStatus


def enqueue_delivery(celery: Celery, sessions: sessionmaker[Session], delivery_id: str, countdown: float = 0) -> bool:
    """Send the message for one committed delivery; False when the broker is down (`dispatch_due` retries)."""
    return enqueue_deliveries(celery, sessions, [delivery_id], countdown) == 1


def enqueue_deliveries(
    celery: Celery, sessions: sessionmaker[Session], delivery_ids: Sequence[str], countdown: float = 0
) -> int:
    """Send one message per delivery, then record in one UPDATE which were sent; returns how many."""
    sent = []
    for delivery_id in delivery_ids:
        if send_after_commit(celery, DELIVER_WEBHOOK_TASK, delivery_id, WEBHOOK_QUEUE, countdown) is None:
            break  # the broker is down: the rest would fail too
        sent.append(delivery_id)
    if sent:
        with sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(sent))
                .values(dispatched_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    return len(sent)


def enqueue_job_deliveries(celery: Celery, sessions: sessionmaker[Session], job_id: str) -> int:
    """After a job transition commits: send the messages of its new outbox rows (its batch's too, if it ended it)."""
    batch_id = select(Job.batch_id).where(Job.id == job_id).scalar_subquery()
    return _enqueue_new(celery, sessions, or_(WebhookDelivery.job_id == job_id, WebhookDelivery.batch_id == batch_id))


def enqueue_batch_deliveries(celery: Celery, sessions: sessionmaker[Session], batch_id: str) -> int:
    """After a batch completion commits: send the message of its `batch.completed` row."""
    return _enqueue_new(celery, sessions, WebhookDelivery.batch_id == batch_id)


def enqueue_batch_job_deliveries(celery: Celery, sessions: sessionmaker[Session], batch_id: str) -> int:
    """After a transition of many of a batch's jobs commits (a cancel): send the new rows of its jobs and its own."""
    job_ids = select(Job.id).where(Job.batch_id == batch_id)
    return _enqueue_new(
        celery, sessions, or_(WebhookDelivery.job_id.in_(job_ids), WebhookDelivery.batch_id == batch_id)
    )


def _enqueue_new(celery: Celery, sessions: sessionmaker[Session], which: ColumnElement[bool]) -> int:
    with sessions() as session:
        ids = session.scalars(
            select(WebhookDelivery.id).where(
                which,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.dispatched_at.is_(None),
            )
        ).all()
    return enqueue_deliveries(celery, sessions, ids)
