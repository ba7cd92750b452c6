"""Finds jobs that would otherwise be lost and puts them back on track.

- `running` jobs whose worker stopped heartbeating go back to `queued` (and are
  sent again, to the front of their queue) while attempts remain, else they fail with `worker_lost`.
- `queued` jobs with no message in the broker are sent again, to the front too.
- batches whose jobs all ended but that no transition completed are completed
  (`shared.batches.complete_finished_batches`), so `batch.completed` is late, never lost.
- images, results and audit rows whose retention ran out are removed (`shared.retention`).
Runs every `sweep_interval_s` from Celery beat on the light worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis
from celery import Celery
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.batches import complete_finished_batches
from shared.celery_app import GPU_QUEUES
from shared.db import drop_deleted_copies
from shared.job_enqueue import enqueue_job
from shared.models import Job
from shared.retention import purge_expired
from shared.settings import Settings
from shared.states import JobStatus
from shared.webhooks.enqueue import enqueue_batch_deliveries
from worker.orphan_messages import orphans, settled_before

log = logging.getLogger(__name__)

# At most this many lost jobs (and as many orphans) per pass; the next pass takes the rest.
MAX_PER_PASS = 500


@dataclass(frozen=True)
class SweepReport:
    requeued_lost: int
    failed_lost: int
    resent: int
    completed_batches: int
    purged_images: int = 0
    purged_results: int = 0
    purged_audit_events: int = 0


def sweep(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery, broker: redis.Redis, now: datetime
) -> SweepReport:
    """One pass over stuck jobs; safe to run concurrently with itself."""
    cutoff = jobs.stale_cutoff(now, settings.heartbeat_timeout_s)
    requeued, failed = recover_lost(settings, sessions, celery, broker, now, jobs.stale_heartbeat(cutoff))
    resent = _resend_orphans(settings, sessions, celery, broker, now)
    with sessions.begin() as session:
        completed = complete_finished_batches(session, now)
    for batch_id in completed:
        enqueue_batch_deliveries(celery, sessions, batch_id)
    with sessions.begin() as session:
        purged = purge_expired(
            session, now, settings.image_retention_s, settings.result_retention_s, settings.audit_retention_s
        )
    if purged.images or purged.results:
        with sessions() as session:
            drop_deleted_copies(session)
    if requeued or failed or resent or completed:
        log.warning(
            "sweep: %d lost jobs requeued, %d failed, %d resent, %d batches completed late",
            requeued,
            failed,
            resent,
            len(completed),
        )
    return SweepReport(
        requeued_lost=requeued,
        failed_lost=failed,
        resent=resent,
        completed_batches=len(completed),
        purged_images=purged.images,
        purged_results=purged.results,
        purged_audit_events=purged.audit_events,
    )


def recover_lost(
    settings: Settings,
    sessions: sessionmaker[Session],
    celery: Celery,
    broker: redis.Redis,
    now: datetime,
    lost: ColumnElement[bool],
) -> tuple[int, int]:
    """Running jobs whose worker is gone (`lost`: a stale heartbeat, or a process known dead) go back to the queue
    while attempts remain, else fail `worker_lost`; returns how many of each."""
    requeued: list[tuple[str, bool]] = []
    failed = 0
    with sessions.begin() as session:
        found = session.execute(
            select(Job.id, Job.interactive).where(Job.status == JobStatus.RUNNING.value, lost).limit(MAX_PER_PASS)
        ).all()
        for job_id, interactive in found:
            if jobs.requeue_lost(session, job_id, lost, settings.max_attempts):
                requeued.append((job_id, interactive))
            elif jobs.fail_lost(session, job_id, lost, settings.max_attempts, now):
                failed += 1
    # The dead worker's message may sit unacked until the visibility timeout: send anew now, to the front of the
    # queue (the job waited its turn once already). Newest first, so the oldest ends up taken first.
    for job_id, interactive in reversed(requeued):
        enqueue_job(celery, sessions, job_id, interactive, front=broker)
    return len(requeued), failed


def _resend_orphans(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery, broker: redis.Redis, now: datetime
) -> int:
    settled = settled_before(settings.requeue_after_s, now)
    with sessions() as session:
        candidates = dict(
            session.execute(
                select(Job.id, Job.interactive)
                .where(
                    Job.status == JobStatus.QUEUED.value,
                    or_(Job.enqueued_at.is_(None), Job.enqueued_at < settled),
                    Job.created_at < settled,
                )
                .order_by(Job.id)
                .limit(MAX_PER_PASS)
            )
            .tuples()
            .all()
        )
    lost = orphans(broker, list(candidates), *GPU_QUEUES, delivered_since=settled.timestamp())
    # Their message was lost, not their turn: to the front, newest first so the oldest is taken first.
    sent = 0
    for job_id in reversed(lost):
        sent += enqueue_job(celery, sessions, job_id, candidates[job_id], front=broker)
    return sent
