"""The GPU worker through Celery and Redis: it holds no more messages than it has batch
slots, and the slots kept for the interactive lane serve a waiting caller while bulk
work fills the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import GPU_QUEUE, INTERACTIVE_QUEUE
from shared.models import Job
from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process, wait_for_line
from worker.inference.engine_contract import Engine

LONG = json.dumps({"max_new_tokens": 1500, "temperature": 0})  # greedy tiny model: runs the whole budget


def _running(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status == "running")) or 0


def _wait(condition, timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_holds_one_message_per_slot_and_keeps_a_slot_for_interactive_jobs(
    settings: Settings,
    client: FlaskClient,
    sessions: sessionmaker[Session],
    broker: redis.Redis,
    engine: Engine,
    png: bytes,
    tmp_path: Path,
) -> None:
    env = vlmq_env(settings, heartbeat_interval_s="0.2", gpu_interactive_slots="1")
    log_path = tmp_path / "worker.log"
    command = [VLMQ, "worker", "gpu", "--concurrency", "3"]
    with log_path.open("w") as log, vlmq_process(command, env, log) as worker:
        try:
            wait_for_line(log_path, r"\(3 slots, 1 kept for interactive jobs\)", 120)
            bulk = [submit(client, png, task="describe", params=LONG).get_json()["id"] for _ in range(5)]
            _wait(lambda: _running(sessions) == 2, what="two running bulk jobs")
            time.sleep(1.0)  # time enough to take a third bulk message, were it allowed to
            assert _running(sessions) == 2
            assert broker.hlen("unacked") == 2
            assert broker.llen(GPU_QUEUE) == 3

            waited = submit(client, png, task="describe", headers={"Prefer": "wait=0.1"})
            urgent = waited.get_json()["id"]
            assert waited.status_code in (200, 202)  # the kept slot may answer within the 0.1 s wait
            # The kept slot takes it while both bulk jobs still run: no bulk job has to end first.
            _wait(lambda: client.get(f"/v1/jobs/{urgent}").get_json()["status"] != "queued", what="the interactive job")
            assert all(client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "running" for job_id in bulk[:2])
            assert broker.llen(GPU_QUEUE) == 3 and broker.llen(INTERACTIVE_QUEUE) == 0
            assert broker.hlen("unacked") <= 3  # never more messages than slots
            _wait(lambda: client.get(f"/v1/jobs/{urgent}").get_json()["status"] == "succeeded", what="its answer")
            time.sleep(1.0)  # the freed interactive slot takes no bulk work
            assert _running(sessions) == 2 and broker.llen(GPU_QUEUE) == 3
        finally:
            for job_id in bulk:
                client.post(f"/v1/jobs/{job_id}/cancel")
    assert worker.returncode == 0, log_path.read_text()[-3000:]
