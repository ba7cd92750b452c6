"""`vlmq up` keeps the web server up when a worker dies, starts the worker again with backoff, and `/readyz`
says what is down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support.helpers import image_bytes
from tests.support.live_service import vlmq_up, wait_for_line
from vlmq.restarts import Backoff


def test_the_delay_doubles_while_failing_and_resets_after_a_good_run() -> None:
    backoff = Backoff()
    assert [backoff.next_delay(ran_s=2) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.next_delay(ran_s=600) == 1, "five minutes of running is a recovery"


def _child_running(parent: int, words: str) -> int:
    """The pid of `parent`'s child whose command line holds `words`."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in map(int, children):
        if words in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
            return pid
    raise AssertionError(f"no child of {parent} runs {words!r}")


@pytest.mark.slow
def test_a_dead_gpu_worker_is_started_again_while_the_web_stays_up(tmp_path: Path, model_data_dir: Path) -> None:
    with vlmq_up(tmp_path, model_data_dir) as (url, up):
        log = tmp_path / "up.log"
        victim = _child_running(up.pid, "worker gpu")
        os.killpg(victim, signal.SIGKILL)  # the worker, its supervisor's child and all: a crash past its supervisor
        wait_for_line(log, r"gpu-worker exited with code -9 .*starts it again in 1 s; the web server stays up", 10)
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        wait_for_line(log, r"gpu-worker started again", 10)
        assert up.poll() is None, "vlmq up kept running"
        files = {"image": ("photo.png", image_bytes(), "image/png")}
        job = requests.post(f"{url}/v1/jobs", files=files, data={"task": "describe"}, timeout=10).json()
        deadline = time.monotonic() + 180
        while (job := requests.get(f"{url}/v1/jobs/{job['id']}", timeout=5).json())["status"] != "succeeded":
            assert time.monotonic() < deadline and job["status"] in ("queued", "running"), (job, log.read_text())
            time.sleep(0.3)
        assert _child_running(up.pid, "worker gpu") != victim
