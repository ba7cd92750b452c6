"""A cancel through the HTTP API stops a real GPU worker's generation at once, not at its next
DB heartbeat: the worker runs with a 30 s heartbeat, so only the pushed cancel can be this quick.
Both engines: the batching loop frees the row's slot at its next step, the one-at-a-time engine
stops at its next token.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process, wait_for_line
from worker.inference.engine_contract import Engine

LONG = json.dumps({"max_new_tokens": 1500, "temperature": 0})  # greedy tiny model: runs the whole budget
STOPPED_WITHIN_S = 2.0  # pushed: well under 0.5 s; by heartbeat alone it would be up to 30 s here


def _line_time(log: Path, pattern: str, timeout_s: float) -> float:
    """The monotonic time at which a line matching `pattern` was first seen in the log (polled every 10 ms)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text()):
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"no line matching {pattern!r}; output was:\n{log.read_text()[-5000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("gpu_engine", ["batched", "sequential"])
def test_an_api_cancel_stops_the_running_generation_and_frees_the_slot(
    gpu_engine: str, settings: Settings, client: FlaskClient, engine: Engine, png: bytes, tmp_path: Path
) -> None:
    env = vlmq_env(settings, heartbeat_interval_s="30", gpu_engine=gpu_engine)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log, vlmq_process([VLMQ, "worker", "gpu"], env, log) as worker:
        wait_for_line(log_path, r"model \S+ loaded in worker process", 120)
        job_id = submit(client, png, task="describe", params=LONG).get_json()["id"]
        _line_time(log_path, rf"job {job_id} started", 60)
        time.sleep(1.0)  # well into generation (the image is read and registered in milliseconds)
        asked = time.monotonic()
        response = client.post(f"/v1/jobs/{job_id}/cancel")
        answered = time.monotonic()
        assert response.status_code == 200, response.get_json()  # still running when canceled
        stopped = _line_time(log_path, rf"job {job_id} was canceled while running", 40)
        follow_up = submit(client, png, task="describe").get_json()["id"]
        started = _line_time(log_path, rf"job {follow_up} started", 30)
        print(
            f"\n{gpu_engine}: cancel request took {answered - asked:.3f} s; generation stopped "
            f"{stopped - answered:.3f} s after its answer; the next job started {started - stopped:.3f} s after that"
        )
        assert stopped - answered < STOPPED_WITHIN_S
        assert f"job {job_id}: cancel pushed" in log_path.read_text()  # not the heartbeat: that is 30 s away
        assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "canceled"
        deadline = time.monotonic() + 60
        while (status := client.get(f"/v1/jobs/{follow_up}").get_json()["status"]) != "succeeded":
            assert status in ("queued", "running") and time.monotonic() < deadline, status
            time.sleep(0.1)
    assert worker.returncode == 0, log_path.read_text()[-3000:]
