"""How `vlmq up` keeps its workers running: one that exits is started again after a growing delay.

A GPU worker's own supervisor already replaces a crashed child; when that gives up (a crash
loop) or dies itself, stopping the whole service would take the web server, and every client
of it, down with a worker. Instead the worker is started again after 1 s, doubling to 60 s
while it keeps failing (a run of 5 minutes counts as recovered), and `/readyz` says what is
down (`shared.down_reports`). A worker that could not load its model is not restarted: that
is a setting to fix, and the caller stops with the worker's message.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from shared.down_reports import clear_down, report_down
from worker.gpu_worker import EXIT_MODEL_LOAD

Spawn = Callable[[Sequence[str]], subprocess.Popen[bytes]]


@dataclass
class Backoff:
    """The delay before the next start: doubles on each failure in a row, from `first_s` to `max_s`."""

    first_s: float = 1.0
    max_s: float = 60.0
    recovered_after_s: float = 300.0
    failures: int = 0

    def next_delay(self, ran_s: float) -> float:
        if ran_s >= self.recovered_after_s:
            self.failures = 0
        self.failures += 1
        return min(self.max_s, self.first_s * 2 ** (self.failures - 1))


@dataclass
class _Worker:
    command: list[str]
    process: subprocess.Popen[bytes]
    started_at: float
    backoff: Backoff
    restart_at: float | None = None


class RestartingWorkers:
    """Worker processes by name, each started again after it exits (`tend`, called in the caller's loop)."""

    def __init__(
        self, commands: dict[str, list[str]], spawn: Spawn, broker: redis.Redis, clock: Callable[[], float]
    ) -> None:
        self._spawn = spawn
        self._broker = broker
        self._clock = clock
        now = clock()
        self._workers = {name: _Worker(command, spawn(command), now, Backoff()) for name, command in commands.items()}

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [worker.process for worker in self._workers.values()]

    def tend(self) -> str | None:
        """Note exits and start what is due; returns why everything must stop (a model that cannot load), if so."""
        now = self._clock()
        for name, worker in self._workers.items():
            if worker.restart_at is None and (code := worker.process.poll()) is not None:
                if code == EXIT_MODEL_LOAD:
                    return f"{name} could not load the model"
                delay = worker.backoff.next_delay(now - worker.started_at)
                worker.restart_at = now + delay
                message = (
                    f"exited with code {code} at {time.strftime('%H:%M:%S')} ({worker.backoff.failures} in a row); "
                    f"vlmq up starts it again in {delay:.0f} s"
                )
                print(f"vlmq: {name} {message}; the web server stays up", file=sys.stderr, flush=True)
                report_down(self._broker, name, message)
            elif worker.restart_at is not None and now >= worker.restart_at:
                worker.process, worker.started_at, worker.restart_at = self._spawn(worker.command), now, None
                print(f"vlmq: {name} started again", flush=True)
                report_down(self._broker, name, f"started again at {time.strftime('%H:%M:%S')}; starting up")
        return None

    def forget_reports(self) -> None:
        """At a clean stop: nothing is down any more, it is stopped."""
        for name in self._workers:
            clear_down(self._broker, name)
