"""Conditional transitions: a job can only be claimed, finished or reported once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from shared.ids import new_id
from shared.models import Job, StoredImage
from shared.states import JobStatus


def make_job(sessions: sessionmaker[Session], status: JobStatus = JobStatus.QUEUED, attempts: int = 0) -> str:
    now = utcnow()
    job_id = new_id("job")
    with sessions.begin() as session:
        image = StoredImage(
            id=new_id("img"),
            tenant_id="default",
            sha256=job_id,
            content_type="image/png",
            width=1,
            height=1,
            size_bytes=1,
            data=b"x",
            created_at=now,
        )
        session.add(image)
        session.flush()
        session.add(
            Job(
                id=job_id,
                tenant_id="default",
                status=status.value,
                task="describe",
                params={},
                model="m",
                image_id=image.id,
                meta={},
                attempts=attempts,
                created_at=now,
                heartbeat_at=now if status == JobStatus.RUNNING else None,
            )
        )
    return job_id


def status_of(sessions: sessionmaker[Session], job_id: str) -> str:
    with sessions() as session:
        return session.get(Job, job_id).status


def test_a_job_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    job_id = make_job(sessions)
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "w1", utcnow())
        assert not jobs.start(session, job_id, "w2", utcnow())
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.worker, job.attempts) == ("running", "w1", 1)


def test_cancel_wins_over_a_late_finish(sessions: sessionmaker[Session]) -> None:
    job_id = make_job(sessions)
    with sessions.begin() as session:
        jobs.start(session, job_id, "w1", utcnow())
        assert jobs.cancel(session, job_id, utcnow())
        assert not jobs.succeed(session, job_id, {"text": "late"}, "m", 1.0, utcnow())
        assert not jobs.fail(session, job_id, "x", "late", utcnow())
        assert not jobs.cancel(session, job_id, utcnow())
    assert status_of(sessions, job_id) == "canceled"


def test_terminal_jobs_never_move(sessions: sessionmaker[Session]) -> None:
    job_id = make_job(sessions)
    with sessions.begin() as session:
        jobs.start(session, job_id, "w1", utcnow())
        assert jobs.succeed(session, job_id, {"text": "ok"}, "m", 1.0, utcnow())
        assert not jobs.start(session, job_id, "w2", utcnow())
        assert not jobs.cancel(session, job_id, utcnow())
        assert not jobs.requeue_lost(session, job_id, utcnow() + timedelta(days=1), 99)
    assert status_of(sessions, job_id) == "succeeded"


def test_heartbeat_only_for_the_owning_worker(sessions: sessionmaker[Session]) -> None:
    job_id = make_job(sessions)
    with sessions.begin() as session:
        jobs.start(session, job_id, "w1", utcnow())
        assert jobs.heartbeat(session, job_id, "w1", utcnow(), 5, 10)
        assert not jobs.heartbeat(session, job_id, "w2", utcnow(), 5, 10)
        jobs.cancel(session, job_id, utcnow())
        assert not jobs.heartbeat(session, job_id, "w1", utcnow(), 6, 10)


def test_lost_job_requeued_while_attempts_remain_then_failed(sessions: sessionmaker[Session]) -> None:
    job_id = make_job(sessions, JobStatus.RUNNING, attempts=1)
    later = utcnow() + timedelta(minutes=5)
    with sessions.begin() as session:
        assert not jobs.fail_lost(session, job_id, later, 2, later)
        assert jobs.requeue_lost(session, job_id, later, 2)
    assert status_of(sessions, job_id) == "queued"
    with sessions.begin() as session:
        jobs.start(session, job_id, "w2", utcnow())
    with sessions.begin() as session:
        assert not jobs.requeue_lost(session, job_id, later, 2)
        assert jobs.fail_lost(session, job_id, later, 2, later)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.error_code, job.attempts) == ("failed", "worker_lost", 2)


def test_fresh_heartbeat_is_not_lost(sessions: sessionmaker[Session]) -> None:
    job_id = make_job(sessions, JobStatus.RUNNING, attempts=1)
    cutoff = jobs.stale_cutoff(utcnow(), 60)
    with sessions.begin() as session:
        assert not jobs.requeue_lost(session, job_id, cutoff, 3)
        assert not jobs.fail_lost(session, job_id, cutoff, 3, utcnow())
    assert status_of(sessions, job_id) == "running"
