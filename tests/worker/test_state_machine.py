"""Conditional transitions: a job can only be claimed, finished or reported once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from shared.models import Job
from shared.states import JobStatus
from tests.support.factories import job_row


def status_of(sessions: sessionmaker[Session], job_id: str) -> str:
    with sessions() as session:
        return session.get(Job, job_id).status


def test_a_job_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    job_id = job_row(sessions)
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "w1", utcnow())
        assert not jobs.start(session, job_id, "w2", utcnow())
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.worker, job.attempts) == ("running", "w1", 1)


def test_cancel_wins_over_a_late_finish(sessions: sessionmaker[Session]) -> None:
    job_id = job_row(sessions)
    with sessions.begin() as session:
        jobs.start(session, job_id, "w1", utcnow())
        assert jobs.cancel(session, job_id, utcnow())
        assert not jobs.succeed(session, job_id, {"text": "late"}, "m", 1.0, utcnow())
        assert not jobs.fail(session, job_id, "x", "late", utcnow())
        assert not jobs.cancel(session, job_id, utcnow())
    assert status_of(sessions, job_id) == "canceled"


def test_terminal_jobs_never_move(sessions: sessionmaker[Session]) -> None:
    job_id = job_row(sessions)
    with sessions.begin() as session:
        jobs.start(session, job_id, "w1", utcnow())
        assert jobs.succeed(session, job_id, {"text": "ok"}, "m", 1.0, utcnow())
        assert not jobs.start(session, job_id, "w2", utcnow())
        assert not jobs.cancel(session, job_id, utcnow())
        assert not jobs.requeue_lost(session, job_id, jobs.stale_heartbeat(utcnow() + timedelta(days=1)), 99)
    assert status_of(sessions, job_id) == "succeeded"


def test_heartbeat_only_for_the_owning_worker(sessions: sessionmaker[Session]) -> None:
    job_id = job_row(sessions)
    with sessions.begin() as session:
        jobs.start(session, job_id, "w1", utcnow())
        assert jobs.heartbeat(session, job_id, "w1", utcnow(), 5, 10)
        assert not jobs.heartbeat(session, job_id, "w2", utcnow(), 5, 10)
        jobs.cancel(session, job_id, utcnow())
        assert not jobs.heartbeat(session, job_id, "w1", utcnow(), 6, 10)


def test_lost_job_requeued_while_attempts_remain_then_failed(sessions: sessionmaker[Session]) -> None:
    job_id = job_row(sessions, JobStatus.RUNNING, attempts=1)
    later = utcnow() + timedelta(minutes=5)
    with sessions.begin() as session:
        assert not jobs.fail_lost(session, job_id, jobs.stale_heartbeat(later), 2, later)
        assert jobs.requeue_lost(session, job_id, jobs.stale_heartbeat(later), 2)
    assert status_of(sessions, job_id) == "queued"
    with sessions.begin() as session:
        jobs.start(session, job_id, "w2", utcnow())
    with sessions.begin() as session:
        assert not jobs.requeue_lost(session, job_id, jobs.stale_heartbeat(later), 2)
        assert jobs.fail_lost(session, job_id, jobs.stale_heartbeat(later), 2, later)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.error_code, job.attempts) == ("failed", "worker_lost", 2)


def test_fresh_heartbeat_is_not_lost(sessions: sessionmaker[Session]) -> None:
    job_id = job_row(sessions, JobStatus.RUNNING, attempts=1)
    cutoff = jobs.stale_cutoff(utcnow(), 60)
    with sessions.begin() as session:
        assert not jobs.requeue_lost(session, job_id, jobs.stale_heartbeat(cutoff), 3)
        assert not jobs.fail_lost(session, job_id, jobs.stale_heartbeat(cutoff), 3, utcnow())
    assert status_of(sessions, job_id) == "running"
