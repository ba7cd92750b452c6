"""Retention: what vlmq keeps after a job ends, and for how long.

- An image's bytes are emptied `VLMQ_IMAGE_RETENTION_S` after the last job using it
  ended (the row stays, marked `purged_at`, because jobs point at it). Images no job
  uses any more (their jobs were deleted) go at once.
- A job's result, and the bodies of its finished webhook deliveries (which carry the
  result), are removed `VLMQ_RESULT_RETENTION_S` after it ended; the job row stays.
- Audit rows are removed `VLMQ_AUDIT_RETENTION_S` after they were written.
- `delete_job` removes one finished job and everything of it now.
The sweeper calls `purge_expired` on every pass; each call handles at most `BATCH` rows
of each kind so a backlog cannot hold the sweeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from shared.models import AuditEvent, Job, StoredImage, WebhookAttempt, WebhookDelivery
from shared.states import JobStatus
from shared.webhooks.outbox import JOB_COMPLETED, JOB_STARTED, DeliveryStatus

BATCH = 500
UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
FINISHED = tuple(status.value for status in JobStatus if status.is_terminal())


@dataclass(frozen=True)
class PurgeReport:
    images: int
    results: int
    audit_events: int


def purge_expired(
    session: Session, now: datetime, image_retention_s: float, result_retention_s: float, audit_retention_s: float
) -> PurgeReport:
    """Empty the images and results, and remove the audit rows, whose retention ran out; returns how many of each."""
    return PurgeReport(
        images=_purge_images(session, now, now - timedelta(seconds=image_retention_s)),
        results=_purge_results(session, now, now - timedelta(seconds=result_retention_s)),
        audit_events=_purge_audit_events(session, now - timedelta(seconds=audit_retention_s)),
    )


def _purge_images(session: Session, now: datetime, ended_before: datetime) -> int:
    used = select(Job.image_id).where(Job.image_id == StoredImage.id).exists()
    orphans = session.scalars(select(StoredImage.id).where(~used).limit(BATCH)).all()
    if orphans:
        session.execute(delete(StoredImage).where(StoredImage.id.in_(orphans), ~used))
    expired = session.scalars(
        select(Job.image_id)
        .join(StoredImage, StoredImage.id == Job.image_id)
        .where(StoredImage.purged_at.is_(None))
        .group_by(Job.image_id)
        .having(func.count().filter(Job.status.in_(UNFINISHED)) == 0, func.max(Job.completed_at) < ended_before)
        .limit(BATCH)
    ).all()
    if expired:
        # Checked again in the UPDATE itself: a job submitted since the SELECT keeps its image.
        session.execute(
            update(StoredImage)
            .where(
                StoredImage.id.in_(expired),
                ~exists().where(Job.image_id == StoredImage.id, Job.status.in_(UNFINISHED)),
            )
            .values(data=b"", purged_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(orphans) + len(expired)


def _purge_results(session: Session, now: datetime, ended_before: datetime) -> int:
    job_ids = session.scalars(
        select(Job.id)
        .where(Job.status.in_(FINISHED), Job.completed_at < ended_before, Job.purged_at.is_(None))
        .limit(BATCH)
    ).all()
    if not job_ids:
        return 0
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(result=None, purged_at=now)
        .execution_options(synchronize_session=False)
    )
    for event_type in (JOB_STARTED, JOB_COMPLETED):  # the bodies carried the result
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.job_id.in_(job_ids),
                WebhookDelivery.event_type == event_type,
                WebhookDelivery.status != DeliveryStatus.PENDING.value,
            )
            .values(payload={"type": event_type, "data": None})
            .execution_options(synchronize_session=False)
        )
    return len(job_ids)


def _purge_audit_events(session: Session, written_before: datetime) -> int:
    event_ids = session.scalars(select(AuditEvent.id).where(AuditEvent.created_at < written_before).limit(BATCH)).all()
    if event_ids:
        session.execute(delete(AuditEvent).where(AuditEvent.id.in_(event_ids)))
    return len(event_ids)


def delete_job(session: Session, job: Job) -> None:
    """Remove a finished job, its webhook deliveries and attempts, and its image if no other job uses it.

    Follow-up questions that continued it keep their own question and answer; they lose
    the link to it.
    """
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.job_id == job.id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id == job.id))
    session.execute(
        update(Job)
        .where(Job.parent_job_id == job.id)
        .values(parent_job_id=None)
        .execution_options(synchronize_session=False)
    )
    image_id = job.image_id
    session.delete(job)
    session.flush()
    session.execute(delete(StoredImage).where(StoredImage.id == image_id, ~exists().where(Job.image_id == image_id)))
