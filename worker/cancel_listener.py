"""Pushed cancels in a GPU worker process: the jobs it runs now, and the thread that stops them.

`RunningJobs` maps each job this process is generating to its `StopSignal` (the
runner registers the heartbeat's signal for the length of `engine.run`), and remembers
for a minute the cancels of jobs it was not generating: a job claimed just before its
cancel may register a moment after the message, and is stopped as it registers. One daemon
thread per process subscribes to `shared.cancel_channel` and sets the signal of any
registered job it hears of, so generation stops at its next token or batch step
instead of at the next DB heartbeat. When Redis goes away the thread reconnects with
backoff; cancels sent meanwhile are caught by the heartbeat, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import RedisError

from shared.cancel_channel import CHANNEL, canceled_ids
from worker.heartbeat import JobCanceled
from worker.inference.engine_contract import StopSignal

log = logging.getLogger(__name__)

POLL_S = 1.0  # how long one wait for a message lasts: the most a shutdown waits on this thread
BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)  # between reconnection attempts; the last repeats
REMEMBER_S = 60.0  # far longer than a claimed job takes to reach `engine.run`


class RunningJobs:
    """The stop signals of the jobs this process is generating, by job id, and the cancels it heard lately."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._signals: dict[str, StopSignal] = {}
        self._heard: dict[str, float] = {}  # canceled job ids not running here, when heard (oldest first)

    @contextmanager
    def registered(self, job_id: str, stop: StopSignal) -> Iterator[None]:
        """Let pushed cancels reach `stop` while the block runs (one heard lately stops it at once)."""
        with self._lock:
            self._signals[job_id] = stop
            canceled = self._heard.pop(job_id, None) is not None
        if canceled:
            self._stop(job_id, stop)
        try:
            yield
        finally:
            with self._lock:
                self._signals.pop(job_id, None)

    def cancel(self, job_ids: list[str]) -> None:
        """Stop those of `job_ids` that run here; remember the others for a while (most run elsewhere)."""
        now = self._clock()
        with self._lock:
            found = [(job_id, self._signals[job_id]) for job_id in job_ids if job_id in self._signals]
            for job_id in job_ids:
                if job_id not in self._signals:
                    self._heard.pop(job_id, None)  # re-inserted: the dict stays oldest first
                    self._heard[job_id] = now
            while self._heard and next(iter(self._heard.values())) < now - REMEMBER_S:
                del self._heard[next(iter(self._heard))]
        for job_id, stop in found:
            self._stop(job_id, stop)

    @staticmethod
    def _stop(job_id: str, stop: StopSignal) -> None:
        log.info("job %s: cancel pushed; stopping its generation", job_id)
        stop.set(JobCanceled(job_id))


def start_cancel_listener(client: redis.Redis, running: RunningJobs) -> threading.Event:
    """Listen for pushed cancels on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=_listen, args=(client, running, stop), name="cancel-listener", daemon=True).start()
    return stop


def _listen(client: redis.Redis, running: RunningJobs, stop: threading.Event) -> None:
    failures = 0
    while not stop.is_set():
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(CHANNEL)
            if failures:
                log.info("cancel listener subscribed again after %d failed attempt(s)", failures)
                failures = 0
            while not stop.is_set():
                message = pubsub.get_message(timeout=POLL_S)
                if message is not None and message["type"] == "message":
                    running.cancel(canceled_ids(message["data"]))
        except RedisError as exc:
            if not failures:
                log.warning("cancel listener lost Redis (%s); reconnecting, heartbeats catch cancels meanwhile", exc)
            failures += 1
            stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1])
        finally:
            pubsub.close()
