"""The job state machine: every transition is one conditional UPDATE.

Each function returns True when it moved the job and False when the job was not in
the state the transition starts from, so a message delivered twice, a cancel racing
a finish, or two sweepers at once can never run or report a job twice. Callers own
the transaction: they commit after a transition (and whatever else belongs with it).

A transition that moved the job also writes its webhook outbox row (`job.started`,
`job.completed`) in that same transaction, and a terminal one completes the job's batch
when it was the batch's last job (`shared.batches`); callers send the delivery messages
after commit (`shared.webhooks.enqueue.enqueue_job_deliveries`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, update
from sqlalchemy.orm import Session

from shared.batches import UNFINISHED, complete_batch, complete_batch_of_job, mark_batch_canceled
from shared.models import Job
from shared.states import JobStatus
from shared.webhooks.outbox import JOB_COMPLETED, JOB_STARTED, record_job_event, record_job_events


def _move(session: Session, job_id: str, from_statuses: set[JobStatus], *where: Any, **values: Any) -> bool:
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_([s.value for s in from_statuses]), *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount == 1


def _reported(session: Session, moved: bool, job_id: str, event_type: str, now: datetime) -> bool:
    """Write the webhook outbox row of a transition that moved the job; an ending may complete its batch."""
    if moved:
        record_job_event(session, job_id, event_type, now)
        if event_type == JOB_COMPLETED:
            complete_batch_of_job(session, job_id, now)
    return moved


def mark_enqueued(session: Session, job_id: str, now: datetime) -> bool:
    """Record that a broker message for a queued job was just sent."""
    return _move(session, job_id, {JobStatus.QUEUED}, enqueued_at=now)


def start(session: Session, job_id: str, worker: str, now: datetime, max_tokens: int | None = None) -> bool:
    """queued → running; counts the attempt. With `max_tokens` (the job's budget) its progress reads 0 of it
    from the first poll, not null until the first heartbeat after generation began."""
    moved = _move(
        session,
        job_id,
        {JobStatus.QUEUED},
        status=JobStatus.RUNNING.value,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
        attempts=Job.attempts + 1,
        progress_tokens=0,
        progress_total=max_tokens,
    )
    return _reported(session, moved, job_id, JOB_STARTED, now)


def heartbeat(session: Session, job_id: str, worker: str, now: datetime, tokens: int | None, total: int | None) -> bool:
    """Prove the worker is alive and record progress; False once the job left `running`."""
    values: dict[str, Any] = {"heartbeat_at": now}
    if tokens is not None:
        values.update(progress_tokens=tokens, progress_total=total)
    return _move(session, job_id, {JobStatus.RUNNING}, Job.worker == worker, **values)


def succeed(
    session: Session, job_id: str, result: dict[str, Any], model: str, inference_s: float, now: datetime
) -> bool:
    """running → succeeded with the model's result."""
    moved = _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        status=JobStatus.SUCCEEDED.value,
        result=result,
        model=model,
        inference_s=inference_s,
        completed_at=now,
    )
    return _reported(session, moved, job_id, JOB_COMPLETED, now)


def fail(
    session: Session,
    job_id: str,
    code: str,
    message: str,
    now: datetime,
    inference_s: float | None = None,
    model: str | None = None,
) -> bool:
    """running → failed with an error the user can act on.

    `model` is the model that ran, when one did; a job that failed before any worker ran it
    keeps the model named at submit.
    """
    ran_on = {} if model is None else {"model": model}
    moved = _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        status=JobStatus.FAILED.value,
        error_code=code,
        error_message=message,
        inference_s=inference_s,
        completed_at=now,
        **ran_on,
    )
    return _reported(session, moved, job_id, JOB_COMPLETED, now)


def cancel(session: Session, job_id: str, now: datetime) -> bool:
    """queued or running → canceled; after commit, callers push it to the running worker (`shared.cancel_channel`)."""
    moved = _move(
        session,
        job_id,
        {JobStatus.QUEUED, JobStatus.RUNNING},
        status=JobStatus.CANCELED.value,
        completed_at=now,
    )
    return _reported(session, moved, job_id, JOB_COMPLETED, now)


def cancel_batch(session: Session, batch_id: str, now: datetime) -> list[str]:
    """Every queued or running job of the batch → canceled, as `cancel` does one by one; returns their ids.

    Set-based, so a 500-job batch is a handful of statements: one UPDATE of the jobs, their
    `job.completed` outbox rows in one insert, then the batch marked canceled and completed.
    The job rows are locked before the batch row, the order a worker's terminal transition
    takes them (`shared.batches`), and nothing waits for a job row while holding a batch row,
    so the two cannot deadlock.
    """
    statement = (
        update(Job)
        .where(Job.batch_id == batch_id, Job.status.in_(UNFINISHED))
        .values(status=JobStatus.CANCELED.value, completed_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    canceled = list(session.scalars(statement))
    if canceled:
        record_job_events(session, canceled, JOB_COMPLETED, now)
        mark_batch_canceled(session, batch_id, now)
        complete_batch(session, batch_id, now)
    return canceled


def release(session: Session, job_id: str, worker: str) -> bool:
    """running → queued for a job its worker claimed but could not start (the database failed as it read the
    job): the attempt is given back, since no model ran."""
    return _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        Job.worker == worker,
        status=JobStatus.QUEUED.value,
        worker=None,
        started_at=None,
        heartbeat_at=None,
        enqueued_at=None,
        attempts=Job.attempts - 1,
    )


def stale_heartbeat(stale_before: datetime) -> ColumnElement[bool]:
    """Lost: the worker stopped heartbeating (the sweeper's test)."""
    return Job.heartbeat_at < stale_before


def of_dead_worker(worker: str) -> ColumnElement[bool]:
    """Lost: the job's worker process is known to be dead (its supervisor saw it exit)."""
    return Job.worker == worker


def requeue_lost(session: Session, job_id: str, lost: ColumnElement[bool], max_attempts: int) -> bool:
    """running → queued when `lost` holds (`stale_heartbeat`, `of_dead_worker`) and attempts remain."""
    return _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        lost,
        Job.attempts < max_attempts,
        status=JobStatus.QUEUED.value,
        worker=None,
        enqueued_at=None,
    )


def fail_lost(session: Session, job_id: str, lost: ColumnElement[bool], max_attempts: int, now: datetime) -> bool:
    """running → failed when `lost` holds and the job has already cost `max_attempts` workers."""
    moved = _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        lost,
        Job.attempts >= max_attempts,
        status=JobStatus.FAILED.value,
        error_code="worker_lost",
        error_message=(
            f"the worker running this job stopped responding {max_attempts} times "
            "(crash, out of memory or killed); the job will not be retried"
        ),
        completed_at=now,
    )
    return _reported(session, moved, job_id, JOB_COMPLETED, now)


def stale_cutoff(now: datetime, heartbeat_timeout_s: float) -> datetime:
    """Heartbeats older than this mean the worker is gone."""
    return now - timedelta(seconds=heartbeat_timeout_s)
