"""Pushed cancels against a real Redis server: published ids reach the stop signal of a job
this process runs, within 0.5 s, and the listener outlives a Redis restart.

Each test has its own redis-server, so the subscriber count it waits for is the listener's alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from shared.cancel_channel import CHANNEL, IDS_PER_MESSAGE, publish_canceled
from tests.support.services import RedisServer, redis_server
from worker.cancel_listener import REMEMBER_S, RunningJobs, start_cancel_listener
from worker.heartbeat import JobCanceled
from worker.inference.engine_contract import StopSignal

PUSH_WITHIN_S = 0.5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_connect_timeout=1)


@pytest.fixture
def running(client: redis.Redis) -> Iterator[RunningJobs]:
    """A listening worker process's registry of running jobs."""
    jobs = RunningJobs()
    stop = start_cancel_listener(client, jobs)
    _wait_until(lambda: _subscribers(client) == 1, 10, "the listener to subscribe")
    yield jobs
    stop.set()
    _wait_until(lambda: _subscribers(client) == 0, 3, "the listener to leave")


def _subscribers(client: redis.Redis) -> int:
    return client.pubsub_numsub(CHANNEL)[0][1]


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _heard(stop: StopSignal) -> threading.Event:
    heard = threading.Event()
    stop.listen(lambda _reason: heard.set())
    return heard


def test_a_published_cancel_sets_the_registered_signal_within_half_a_second(
    client: redis.Redis, running: RunningJobs
) -> None:
    stop = StopSignal()
    heard = _heard(stop)
    with running.registered("job_a", stop):
        published = time.monotonic()
        publish_canceled(client, ["job_a"])
        assert heard.wait(PUSH_WITHIN_S)
        print(f"pushed cancel reached the signal in {time.monotonic() - published:.4f} s")
    assert isinstance(stop.reason, JobCanceled) and stop.reason.args == ("job_a",)


def test_cancels_of_jobs_running_elsewhere_are_ignored(client: redis.Redis, running: RunningJobs) -> None:
    here, finished = StopSignal(), StopSignal()
    with running.registered("job_finished", finished):
        pass
    heard = _heard(here)
    with running.registered("job_here", here):
        publish_canceled(client, ["job_elsewhere", "job_finished"])
        publish_canceled(client, ["job_elsewhere", "job_here"])
        assert heard.wait(PUSH_WITHIN_S)  # messages arrive in order: the first was read and ignored
    assert finished.reason is None


def test_a_large_batch_cancel_is_a_few_messages_and_reaches_every_running_job(
    client: redis.Redis, running: RunningJobs
) -> None:
    job_ids = [f"job_{n:04d}" for n in range(2 * IDS_PER_MESSAGE + 1)]
    mine = {job_id: StopSignal() for job_id in job_ids[::250]}
    heard = [_heard(stop) for stop in mine.values()]
    observer = client.pubsub(ignore_subscribe_messages=True)
    observer.subscribe(CHANNEL)
    _wait_until(lambda: _subscribers(client) == 2, 10, "the observer to subscribe")
    with ExitStack() as registrations:
        for job_id, stop in mine.items():
            registrations.enter_context(running.registered(job_id, stop))
        publish_canceled(client, job_ids)
        assert all(event.wait(PUSH_WITHIN_S) for event in heard)
    messages = 0
    published: list[str] = []
    deadline = time.monotonic() + 2
    while len(published) < len(job_ids) and time.monotonic() < deadline:
        if (message := observer.get_message(timeout=0.2)) is not None:
            messages += 1
            published += message["data"].decode().split()
    assert messages == 3 and published == job_ids
    observer.close()


def test_the_listener_resubscribes_after_redis_restarts(
    server: RedisServer, client: redis.Redis, running: RunningJobs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.cancel_listener")
    server.stop()
    time.sleep(2.0)  # several reconnection attempts fail meanwhile
    server.start()
    _wait_until(lambda: _subscribers(client) == 1, 20, "the listener to subscribe again")
    stop = StopSignal()
    heard = _heard(stop)
    with running.registered("job_a", stop):
        publish_canceled(client, ["job_a"])
        assert heard.wait(PUSH_WITHIN_S)
    lost = [r for r in caplog.records if r.levelno == logging.WARNING and "lost Redis" in r.getMessage()]
    assert len(lost) == 1, caplog.text  # one line for the outage, not one per attempt
    assert "subscribed again" in caplog.text


def test_publishing_while_redis_is_down_does_not_fail_the_cancel(
    server: RedisServer, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    server.stop()
    publish_canceled(client, ["job_a"])  # the heartbeat catches this cancel instead
    assert "could not push the cancel of 1 job(s)" in caplog.text


def test_stopping_the_listener_ends_its_thread_promptly(client: redis.Redis) -> None:
    stop = start_cancel_listener(client, RunningJobs())
    _wait_until(lambda: _subscribers(client) == 1, 10, "the listener to subscribe")
    stop.set()
    _wait_until(lambda: _subscribers(client) == 0, 3, "the listener to leave")


def test_a_job_that_registers_just_after_its_cancel_was_pushed_stops_at_once(
    client: redis.Redis, running: RunningJobs
) -> None:
    """Claimed, canceled and pushed before the runner reached `engine.run`: no wait for the heartbeat."""
    elsewhere = StopSignal()
    with running.registered("job_elsewhere", elsewhere):
        publish_canceled(client, ["job_late"])
        publish_canceled(client, ["job_elsewhere"])
        assert _heard(elsewhere).wait(PUSH_WITHIN_S)  # in order: the first message was read too
    late = StopSignal()
    with running.registered("job_late", late):
        assert isinstance(late.reason, JobCanceled)


def test_cancels_heard_for_other_workers_are_forgotten_after_a_while() -> None:
    clock = [1000.0]
    running = RunningJobs(clock=lambda: clock[0])
    running.cancel(["job_old"])
    clock[0] += REMEMBER_S + 1
    running.cancel(["job_new"])  # hearing another cancel forgets the old one
    old, new = StopSignal(), StopSignal()
    with running.registered("job_old", old), running.registered("job_new", new):
        assert old.reason is None and isinstance(new.reason, JobCanceled)
