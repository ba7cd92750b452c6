"""A batch's one transition: `running → completed`, when its last job reaches a terminal state.

It runs inside the transaction of that job's terminal transition (`shared.jobs`), so
`completed_at` and the `batch.completed` outbox row commit together with the job's
status: never lost, never doubled.

Two workers finishing a batch's last two jobs at once would, under PostgreSQL's READ
COMMITTED, each see the other's job still running and neither complete the batch. So
the check first locks the batch row: the second transaction waits there until the first
commits, and its next statement sees that commit. SQLite serializes writers anyway.
The sweeper also calls `complete_finished_batches` as a safety net for completions no
transition saw (jobs ended by code that predates batches during a rolling deploy, or
changed by hand), so those are late, never lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, exists, select, update
from sqlalchemy.orm import Session

from shared.models import Batch, Job
from shared.states import JobStatus
from shared.webhooks.outbox import record_batch_completed

UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
SWEEP_LIMIT = 500


def complete_batch(session: Session, batch_id: str, now: datetime) -> bool:
    """Mark the batch completed when none of its jobs is queued or running; True only for the call that did."""
    session.execute(select(Batch.id).where(Batch.id == batch_id).with_for_update())
    unfinished = exists().where(Job.batch_id == batch_id, Job.status.in_(UNFINISHED))
    statement = (
        update(Batch)
        .where(Batch.id == batch_id, Batch.completed_at.is_(None), ~unfinished)
        .values(completed_at=now)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    if result.rowcount != 1:
        return False
    record_batch_completed(session, batch_id, now)
    return True


def complete_batch_of_job(session: Session, job_id: str, now: datetime) -> bool:
    """After a job's terminal transition: complete its batch if it was the last one running."""
    batch_id = session.scalar(select(Job.batch_id).where(Job.id == job_id))
    return batch_id is not None and complete_batch(session, batch_id, now)


def complete_finished_batches(session: Session, now: datetime) -> list[str]:
    """The sweeper's safety net: complete batches whose jobs all ended but no transition completed."""
    unfinished = exists().where(Job.batch_id == Batch.id, Job.status.in_(UNFINISHED))
    candidates = session.scalars(
        select(Batch.id).where(Batch.completed_at.is_(None), ~unfinished).order_by(Batch.id).limit(SWEEP_LIMIT)
    ).all()
    return [batch_id for batch_id in candidates if complete_batch(session, batch_id, now)]


def mark_batch_canceled(session: Session, batch_id: str, now: datetime) -> None:
    """Record that someone canceled the batch (once); it then reports `canceled` when its jobs have ended."""
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.canceled_at.is_(None))
        .values(canceled_at=now)
        .execution_options(synchronize_session=False)
    )
