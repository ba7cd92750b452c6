"""A running job's time limits, kept by its heartbeat (the thread pool has no Celery time limits)."""

from __future__ import annotations

import threading
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from tests.support.helpers import submit
from worker.heartbeat import EXIT_HUNG, Heartbeat, JobCanceled, JobTimedOut


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _running_job(client: FlaskClient, sessions: sessionmaker[Session], png: bytes) -> str:
    job_id = submit(client, png, task="describe").get_json()["id"]
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "w1", utcnow())
    return job_id


def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_past_the_soft_limit_the_next_progress_call_stops_the_job(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    job_id = _running_job(client, sessions, png)
    clock = Clock()
    with Heartbeat(sessions, job_id, "w1", 0.05, soft_limit_s=10, hard_limit_s=20, clock=clock) as heartbeat:
        heartbeat.progress(3, 100)
        clock.now += 11
        with pytest.raises(JobTimedOut):
            heartbeat.progress(4, 100)
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "running"  # the runner records the timeout


def test_past_the_hard_limit_a_hung_job_fails_as_timeout_and_the_process_leaves(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[int] = []
    monkeypatch.setattr("worker.heartbeat.os._exit", exits.append)  # the edge: leaving the process
    job_id = _running_job(client, sessions, png)
    clock = Clock()
    with Heartbeat(sessions, job_id, "w1", 0.05, soft_limit_s=10, hard_limit_s=20, clock=clock) as heartbeat:
        heartbeat.progress(5, 100)
        clock.now += 21  # no progress since: the engine is stuck
        _until(lambda: bool(exits))
        with pytest.raises(JobCanceled):
            heartbeat.progress(6, 100)
    assert exits == [EXIT_HUNG]
    error = client.get(f"/v1/jobs/{job_id}").get_json()["error"]
    assert error["code"] == "timeout" and "hard time limit" in error["message"]


def test_the_heartbeat_thread_sets_the_stop_signal_at_the_soft_limit_without_a_progress_call(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    """An engine that waits on the signal (the batching loop) is stopped even if it never reports progress."""
    job_id = _running_job(client, sessions, png)
    clock = Clock()
    with Heartbeat(sessions, job_id, "w1", 0.05, soft_limit_s=10, hard_limit_s=20, clock=clock) as heartbeat:
        clock.now += 9
        time.sleep(0.2)
        assert heartbeat.stop.reason is None
        clock.now += 1  # exactly at the deadline
        _until(lambda: heartbeat.stop.reason is not None)
        assert isinstance(heartbeat.stop.reason, JobTimedOut)
        with pytest.raises(JobTimedOut):
            heartbeat.progress(4, 100)


def test_the_heartbeat_wakes_for_the_soft_limit_before_its_next_beat(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    """The deadline is kept to its moment, not rounded up to the next heartbeat 30 s away."""
    job_id = _running_job(client, sessions, png)
    stopped = threading.Event()
    started = time.monotonic()
    with Heartbeat(sessions, job_id, "w1", 30, soft_limit_s=0.3, hard_limit_s=60) as heartbeat:
        heartbeat.stop.listen(lambda _reason: stopped.set())
        assert stopped.wait(5)
        waited = time.monotonic() - started
    assert isinstance(heartbeat.stop.reason, JobTimedOut)
    assert 0.3 <= waited < 0.8, waited


def test_a_cancel_seen_by_the_db_heartbeat_sets_the_stop_signal(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    """The fallback when a pushed cancel is lost: the next DB heartbeat finds the job no longer running."""
    job_id = _running_job(client, sessions, png)
    with Heartbeat(sessions, job_id, "w1", 0.05, soft_limit_s=10, hard_limit_s=20) as heartbeat:
        with sessions.begin() as session:
            assert jobs.cancel(session, job_id, utcnow())
        _until(lambda: heartbeat.stop.reason is not None)
        assert isinstance(heartbeat.stop.reason, JobCanceled)
        with pytest.raises(JobCanceled):
            heartbeat.progress(1, 100)
