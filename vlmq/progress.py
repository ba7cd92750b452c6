"""Progress while the command line waits: a rich bar on a terminal, plain lines in a log or a pipe.

Both show what is done out of the total, the rate and the time left, on stderr, so stdout
keeps only the command's result.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_INTERVAL_S = 2.0


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f}/s" if speed else "-/s", style="progress.data.speed")


class ProgressBar:
    """`with ProgressBar(total, "photos") as bar: bar.update(done, note)`."""

    def __init__(self, total: int, unit: str, interactive: bool | None = None) -> None:
        self.total = total
        self.unit = unit
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._rich: Progress | None = None
        self._task_id: int | None = None
        self._started = time.monotonic()
        self._last_line = 0.0
        self._last: tuple[int, str] | None = None

    def __enter__(self) -> ProgressBar:
        if self.interactive:
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._rich.start()
            self._task_id = self._rich.add_task(self.unit, total=self.total)
        return self

    def update(self, done: int, note: str = "") -> None:
        """Show `done` of the total; `note` says what the work is doing (e.g. `running 12/64 tokens`)."""
        if self._rich is not None and self._task_id is not None:
            description = f"{self.unit} {note}".strip()
            self._rich.update(self._task_id, completed=done, description=description)
            return
        now = time.monotonic()
        changed = self._last != (done, note)
        if changed and (now - self._last_line >= PLAIN_INTERVAL_S or done == self.total or self._last is None):
            self._last, self._last_line = (done, note), now
            print(f"vlmq: {self._plain_line(done, note, now)}", file=sys.stderr, flush=True)

    def _plain_line(self, done: int, note: str, now: float) -> str:
        elapsed = now - self._started
        line = f"{done}/{self.total} {self.unit} finished"
        if done and elapsed > 0:
            rate = done / elapsed
            line += f" ({rate:.2f}/s, about {(self.total - done) / rate:.0f} s left)"
        return f"{line}{', ' + note if note else ''}"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
