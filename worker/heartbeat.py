"""Keeps a running job's heartbeat fresh and tells the engine when to stop.

A background thread stamps `heartbeat_at` (and the latest token count) every few
seconds. When that update finds the job no longer `running` (canceled by a user,
or reclaimed by the sweeper) the next progress call raises `JobCanceled` inside
generation, which stops the model mid-sequence.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from worker.inference.types import StopGeneration

log = logging.getLogger(__name__)


class JobCanceled(StopGeneration):
    """The job left `running` while the model was working on it."""


class Heartbeat:
    def __init__(self, sessions: sessionmaker[Session], job_id: str, worker: str, interval_s: float) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._worker = worker
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._progress: tuple[int, int] | None = None
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
        """Engine callback: remember progress; stop generation if the job is gone."""
        self._progress = (tokens, total)
        if self._lost.is_set():
            raise JobCanceled(self._job_id)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
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
