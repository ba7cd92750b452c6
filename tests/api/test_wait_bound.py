"""`Prefer: wait` under load on the real web server (gunicorn): the waiters are bounded per process, the
rest are answered 202 at once, and `/healthz` stays fast."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from shared.migrate import upgrade_to_head
from tests.support.helpers import image_bytes
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process
from vlmq.redis_server import free_port

THREADS = 4
WAITERS = 2
SUBMITS = 12


@pytest.fixture
def web_url(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """`vlmq web` with few threads and no GPU worker, so a waiting request waits its whole time."""
    database = f"sqlite:///{tmp_path / 'vlmq.db'}"
    upgrade_to_head(database)
    port = free_port()
    env = vlmq_env(
        data_dir=str(tmp_path),
        database_url=database,
        redis_url=redis_url,
        max_waiting_requests=str(WAITERS),
        max_wait_s="30",
        rate_limit="1000/second",
    )
    command = [VLMQ, "web", "--port", str(port), "--workers", "1", "--threads", str(THREADS)]
    url = f"http://127.0.0.1:{port}"
    # grace_s=0: the held waiters would make a graceful stop wait for them
    with vlmq_process(command, env, subprocess.DEVNULL, grace_s=0):
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "vlmq web did not start"
                time.sleep(0.1)
        yield url


def _submit_waiting(url: str) -> requests.Response:
    files = {"image": ("photo.png", image_bytes(), "image/png")}
    return requests.post(
        f"{url}/v1/jobs", files=files, data={"task": "describe"}, headers={"Prefer": "wait=25"}, timeout=60
    )


def test_waiters_beyond_the_bound_get_202_at_once_and_health_stays_fast(web_url: str) -> None:
    pool = ThreadPoolExecutor(SUBMITS)
    started = time.monotonic()
    submits: list[Future[requests.Response]] = [pool.submit(_submit_waiting, web_url) for _ in range(SUBMITS)]
    deadline = started + 10
    while sum(future.done() for future in submits) < SUBMITS - WAITERS and time.monotonic() < deadline:
        time.sleep(0.05)
    answered = [future.result() for future in submits if future.done()]
    health_s = []
    for _ in range(5):
        before = time.monotonic()
        assert requests.get(f"{web_url}/healthz", timeout=5).status_code == 200
        health_s.append(time.monotonic() - before)
    still_waiting = sum(not future.done() for future in submits)
    pool.shutdown(wait=False, cancel_futures=True)

    assert len(answered) == SUBMITS - WAITERS, [response.status_code for response in answered]
    assert still_waiting == WAITERS  # the bound's worth of callers are still waiting, as they asked
    for response in answered:
        assert response.status_code == 202, response.text
        assert "Preference-Applied" not in response.headers  # RFC 7240: the preference was not honoured
        assert response.json()["status"] == "queued"
    assert max(health_s) < 1.0, health_s
