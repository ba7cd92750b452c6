"""A running job's time limits, kept by its heartbeat (the thread pool has no Celery time limits)."""

from __future__ import annotations

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
