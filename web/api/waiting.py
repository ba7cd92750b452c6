"""`Prefer: wait=N`: hold a request until its job ends or N seconds pass.

A waiting request holds a web server thread, so each process lets at most
`VLMQ_MAX_WAITING_REQUESTS` wait at once; beyond that the preference is not honoured
(RFC 7240 allows it) and the job is answered 202 at once, keeping threads free for
`/healthz` and everything else.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from shared.states import JobStatus
from web.errors import ApiError

_WAIT = re.compile(r"(?:^|[,;\s])wait(?:\s*=\s*([^,;\s]*))?(?=$|[,;\s])", re.IGNORECASE)


def requested_wait_s(prefer_header: str | None, max_wait_s: float) -> float:
    """Seconds to wait (capped at the server's maximum); 0 without the preference.

    A bare `Prefer: wait` (as Replicate's clients send it) waits the maximum.
    """
    if not prefer_header:
        return 0.0
    match = _WAIT.search(prefer_header)
    if match is None:
        return 0.0
    if match.group(1) is None:
        return max_wait_s
    try:
        wait = float(match.group(1))
    except ValueError:
        raise ApiError("invalid_prefer", "Prefer: wait=N needs N as a number of seconds") from None
    if not 0 <= wait < float("inf"):
        raise ApiError("invalid_prefer", "Prefer: wait=N needs a non-negative N")
    return min(wait, max_wait_s)


def wait_until_finished(sessions: sessionmaker[Session], job_id: str, wait_s: float) -> None:
    """Poll the job row (backing off to 0.5 s) until it is terminal or time is up."""
    deadline = time.monotonic() + wait_s
    interval = 0.05
    while time.monotonic() < deadline:
        with sessions() as session:
            status = session.get(Job, job_id).status
        if JobStatus(status).is_terminal():
            return
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.5)


class WaitSlots:
    """The waiting requests one web process allows at once."""

    def __init__(self, limit: int) -> None:
        self._free = threading.BoundedSemaphore(limit) if limit > 0 else None

    @contextmanager
    def claim(self, wait_s: float) -> Iterator[float]:
        """Yield `wait_s` while holding a slot, or 0 (do not wait) when none is free."""
        if wait_s <= 0 or self._free is None or not self._free.acquire(blocking=False):
            yield 0.0
            return
        try:
            yield wait_s
        finally:
            self._free.release()
