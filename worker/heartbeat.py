"""Keeps a running job's heartbeat fresh and tells the engine when to stop.

A background thread stamps `heartbeat_at` (and the latest token count) every few
seconds. When that update finds the job no longer `running` (canceled by a user,
or reclaimed by the sweeper) the next progress call raises `JobCanceled` inside
generation, which stops the model mid-sequence (in a batch: frees its slot at the
next step). Past the soft time limit the next progress call raises `JobTimedOut`.
Past the hard limit the job is failed as `timeout` here; if the engine has not
reported progress for the whole gap between the two limits it is hung, and the
process exits so its supervisor starts a fresh one (the sweeper requeues the rest).
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
from worker.inference.engine_contract import StopGeneration

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
        self._lost = threading.Event()
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
        if self._lost.is_set():
            raise JobCanceled(self._job_id)
        if self._progress_at > self._soft_deadline:
            raise JobTimedOut(self._job_id)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            if self._clock() > self._hard_deadline:
                self._give_up()
                return
            tokens, total = self._progress or (None, None)
            try:
                with self._sessions.begin() as session:
                    alive = jobs.heartbeat(session, self._job_id, self._worker, utcnow(), tokens, total)
            except SQLAlchemyError as exc:
                log.warning("heartbeat for job %s failed (will retry): %s", self._job_id, exc)
                continue
            if not alive:
                self._lost.set()
                return

    def _give_up(self) -> None:
        """Past the hard limit: fail the job; exit the process if the engine is stuck."""
        self._lost.set()
        message = "the job passed the hard time limit and was stopped"
        with self._sessions.begin() as session:
            jobs.fail(session, self._job_id, "timeout", message, utcnow())
        if self._clock() - self._progress_at > self._stall_limit_s:
            log.critical("job %s: the engine made no progress for %.0f s; exiting", self._job_id, self._stall_limit_s)
            os._exit(EXIT_HUNG)
