"""Running the `vlmq` command as a user does: its environment, its output, a whole `vlmq up`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from shared.settings import Settings
from vlmq.redis_server import free_port

VLMQ = str(Path(sys.executable).with_name("vlmq"))


def wait_for_line(log: Path, pattern: str, timeout_s: float) -> str:
    """Wait until the process log has a line matching `pattern`; return that line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.2)
    raise AssertionError(f"no line matching {pattern!r}; output was:\n{log.read_text()}")


def vlmq_env(settings: Settings | None = None, **overrides: str) -> dict[str, str]:
    """The test's environment without stray VLMQ_* values, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMQ_")}
    if settings is not None:
        env.update(
            VLMQ_DATA_DIR=str(settings.data_dir),
            VLMQ_DATABASE_URL=settings.sqlalchemy_url,
            VLMQ_REDIS_URL=settings.redis_url,
        )
    return env | {"PYTHONUNBUFFERED": "1"} | {f"VLMQ_{k.upper()}": v for k, v in overrides.items()}


def _default_sigint() -> None:
    """In the child, before exec: SIGINT back to its default, so Python there raises KeyboardInterrupt on it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def vlmq_process(
    argv: Sequence[str], env: dict[str, str], stdout: IO[Any] | int | None = None, grace_s: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` (a `vlmq` command) in its own process group, always reaped: at exit, however the test ended,
    SIGTERM it, wait up to `grace_s`, then SIGKILL whatever is left of its group (a Celery worker's forked pool
    included). A worker left running would consume the shared test Redis and fail later tests.

    The child takes SIGINT as a terminal's foreground command does, even when the suite runs in the background
    (`pytest &`), where the shell made SIGINT ignored and every child would inherit that."""
    process = subprocess.Popen(
        list(argv),
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(grace_s)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def vlmq_up(workdir: Path, model_data_dir: Path, **overrides: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`vlmq up` on a free port with its own data dir (the tiny model reused); yields its URL and process."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "models").symlink_to(model_data_dir / "models")  # reuse the tiny model built for this run
    log = workdir / "up.log"
    command = [VLMQ, "up", "--port", str(free_port())]
    with (
        log.open("w") as output,
        vlmq_process(command, vlmq_env(data_dir=str(data_dir), **overrides), output) as process,
    ):
        ready = wait_for_line(log, r"ready at http://", 180)
        yield ready.split("ready at ")[1].split()[0], process
