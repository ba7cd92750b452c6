"""Keeps one worker process running: restarts it when it dies, passes stop signals on.

The GPU worker is one process holding the model, its batching loop and Celery's
worker threads; a crash there (CUDA fault, out-of-memory kill, a hung step) takes
all of it down. This parent never imports torch or touches CUDA: it forks the
worker, waits, and starts a fresh one when it died abnormally, the way Celery's
prefork pool replaces a lost child. A worker that exits on purpose (stopped, or
unable to load its model) is not restarted, and a crash loop gives up. Whenever a
child has exited, `on_exit` hears its pid at once (the GPU worker's running jobs go
back to the queue then, not when their heartbeats go stale).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

from shared.parent_death import die_with_parent

log = logging.getLogger(__name__)

RESTARTS_ALLOWED = 5
RESTART_WINDOW_S = 600.0


def supervise(
    target: Callable[[], int],
    final_codes: frozenset[int] = frozenset({0}),
    on_exit: Callable[[int], None] | None = None,
) -> int:
    """Run `target` in a forked child until it exits with one of `final_codes` or a stop
    signal arrives; returns the child's last exit code. `on_exit(pid)` runs after each child ended."""
    stopping = False
    child: multiprocessing.process.BaseProcess | None = None

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)  # Celery's warm shutdown: running jobs finish

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    crashes: deque[float] = deque()
    try:
        while True:
            child = multiprocessing.get_context("fork").Process(target=_run_child, args=(target,), name="vlmq-worker")
            child.start()
            child.join()
            code = child.exitcode if child.exitcode is not None else 1
            if on_exit is not None and child.pid is not None:
                _report_exit(on_exit, child.pid)
            if stopping or code in final_codes:
                return code
            now = time.monotonic()
            crashes.append(now)
            while crashes and crashes[0] < now - RESTART_WINDOW_S:
                crashes.popleft()
            if len(crashes) > RESTARTS_ALLOWED:
                log.critical("the worker process died %d times in %.0f s; giving up", len(crashes), RESTART_WINDOW_S)
                return code
            log.error("the worker process %s exited with %s; starting a new one", child.pid, code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report_exit(on_exit: Callable[[int], None], pid: int) -> None:
    """A failing `on_exit` (the database down, say) must not stop the supervisor: what it would have done is
    left to slower paths (the sweeper)."""
    try:
        on_exit(pid)
    except Exception:
        log.exception("handling the exit of worker process %s failed; the sweeper will recover its jobs", pid)


def _run_child(target: Callable[[], int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    # A supervisor killed outright must not leave its worker holding the GPU against the replacement that
    # whoever ran the supervisor (`vlmq up`, an orchestrator) starts next.
    die_with_parent(signal.SIGKILL)
    raise SystemExit(target())
