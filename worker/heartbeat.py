"""Keeps a running job's heartbeat fresh and tells the engine when to stop.

A background thread stamps `heartbeat_at` (and the latest token count) every few
seconds. The heartbeat's `stop` signal is what generation listens to (the batching
loop frees the row's slot at its next step; the one-at-a-time engine checks it
between tokens): it is set with `JobCanceled` by a cancel pushed over Redis
(`worker.cancel_listener`) or, as the fallback, when that DB update finds the job no
longer `running` (canceled by a user, or reclaimed by the sweeper); and with
`JobTimedOut` by the thread at the soft time limit, which it wakes for. Engines that
only report progress see the same reason raised from `progress`. Past the hard limit
the job is failed as `timeout` here; if the engine has not reported progress for the
whole gap between the two limits it is hung, and the process exits so its supervisor
starts a fresh one (the sweeper requeues the rest).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from worker.inference.engine_contract import StopGeneration, StopSignal

log = logging.getLogger(__name__)

EXIT_HUNG = 70


class JobCanceled(StopGeneration):
    """The job left `running` while the model was working on it."""


class JobTimedOut(StopGeneration):
    """The job ran past the soft time limit."""


class Heartbeat:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: str,
        worker: str,
        interval_s: float,
        soft_limit_s: float,
        hard_limit_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._worker = worker
        self._interval_s = interval_s
        self._clock = clock
        started = clock()
        self._soft_deadline = started + soft_limit_s
        self._hard_deadline = started + hard_limit_s
        self._stall_limit_s = hard_limit_s - soft_limit_s
        self._stop = threading.Event()
        self.stop = StopSignal()
        self._progress: tuple[int, int] | None = None
        self._progress_at = started
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def progress(self, tokens: int, total: int) -> None:
        """Engine callback: remember progress; stop generation if the job is gone or out of time."""
        self._progress = (tokens, total)
        self._progress_at = self._clock()
        self._check_soft_limit(self._progress_at)
        if self.stop.reason is not None:
            raise self.stop.reason

    def _check_soft_limit(self, now: float) -> None:
        if now >= self._soft_deadline:
            self.stop.set(JobTimedOut(self._job_id))

    def _next_wait_s(self) -> float:
        """Until the next DB heartbeat, or the soft limit if that comes first and has not stopped the job yet."""
        if self.stop.reason is not None:
            return self._interval_s
        return max(0.0, min(self._interval_s, self._soft_deadline - self._clock()))

    def _loop(self) -> None:
        while not self._stop.wait(self._next_wait_s()):
            now = self._clock()
            if now > self._hard_deadline:
                self._give_up()
                return
            self._check_soft_limit(now)
            tokens, total = self._progress or (None, None)
            try:
                with self._sessions.begin() as session:
                    alive = jobs.heartbeat(session, self._job_id, self._worker, utcnow(), tokens, total)
            except SQLAlchemyError as exc:
                log.warning("heartbeat for job %s failed (will retry): %s", self._job_id, exc)
                continue
            if not alive:
                self.stop.set(JobCanceled(self._job_id))
                return

    def _give_up(self) -> None:
        """Past the hard limit: fail the job; exit the process if the engine is stuck."""
        self.stop.set(JobCanceled(self._job_id))
        message = "the job passed the hard time limit and was stopped"
        with self._sessions.begin() as session:
            jobs.fail(session, self._job_id, "timeout", message, utcnow())
        if self._clock() - self._progress_at > self._stall_limit_s:
            log.critical("job %s: the engine made no progress for %.0f s; exiting", self._job_id, self._stall_limit_s)
            os._exit(EXIT_HUNG)
