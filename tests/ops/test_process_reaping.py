"""A `vlmq` subprocess a test starts is reaped with its whole process group, however the test ends: a worker
left running would consume the shared test Redis and fail later tests."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support.live_service import vlmq_process

# A parent and its forked child that both ignore SIGTERM, as a stuck worker and its pool child would.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    time.sleep(600)
else:
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(600)
"""

# Exits 130 on Ctrl-C, as `vlmq` does.
INTERRUPTIBLE = """
import sys, time
try:
    print("waiting", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_test_that_fails_leaves_no_process_of_the_group_running(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    with (
        pytest.raises(RuntimeError),
        vlmq_process([sys.executable, "-c", STUBBORN, str(ready)], dict(os.environ), grace_s=0.5) as process,
    ):
        deadline = time.monotonic() + 10
        while not ready.exists() or not ready.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
        assert children and all(_alive(pid) for pid in [process.pid, *children])
        raise RuntimeError("the test failed while its worker ran")
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in [process.pid, *children]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in [process.pid, *children])


def test_the_child_takes_sigint_even_when_the_suite_ignores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite started in the background (`pytest &`) has SIGINT ignored; its `vlmq` children must still
    stop on Ctrl-C as a user's would (tests/batches/test_cli_catalogue.py interrupts `vlmq batch run`)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        waits = [sys.executable, "-c", INTERRUPTIBLE]
        log = tmp_path / "child.log"
        with log.open("w") as output, vlmq_process(waits, dict(os.environ), output) as process:
            deadline = time.monotonic() + 10
            while "waiting" not in log.read_text():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
