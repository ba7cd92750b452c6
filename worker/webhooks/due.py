"""Resending delivery messages that were lost: run by beat on the webhook worker (`dispatch_due`).

A delivery row, not its message, decides whether and when to send (`shared.webhooks.enqueue`),
so this finds every due row with no message waiting and no live attempt and sends it a fresh one.
"""

from __future__ import annotations

from datetime import datetime

import redis
from celery import Celery
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import WEBHOOK_QUEUE
from shared.models import WebhookDelivery
from shared.settings import Settings
from shared.webhooks.enqueue import enqueue_deliveries
from shared.webhooks.outbox import DeliveryStatus
from worker.orphan_messages import orphans, settled_before

# At most this many deliveries per pass; the next pass takes the rest.
MAX_PER_PASS = 500


def dispatch_due(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery, broker: redis.Redis, now: datetime
) -> int:
    """Send a message for each due delivery that has none waiting and no live attempt; returns how many."""
    settled = settled_before(settings.requeue_after_s, now)
    with sessions() as session:
        candidates = session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                or_(WebhookDelivery.dispatched_at.is_(None), WebhookDelivery.dispatched_at < settled),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(MAX_PER_PASS)
        ).all()
    return enqueue_deliveries(celery, sessions, orphans(broker, candidates, WEBHOOK_QUEUE))
