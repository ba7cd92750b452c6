"""The whole service as a user runs it: real processes, real HTTP, real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from shared.settings import Settings
from tests.support.helpers import image_bytes, submit
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process, wait_for_line
from vlmq.redis_server import free_port
from worker.inference.engine_contract import Engine


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_vlmq_up_serves_a_round_trip_and_stops_cleanly(tmp_path: Path, model_data_dir: Path, engine: Engine) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(model_data_dir / "models")  # reuse the tiny model built for this run
    port = free_port()
    env = vlmq_env(data_dir=str(data_dir), max_new_tokens="32")
    log = tmp_path / "up.log"
    with log.open("w") as output, vlmq_process([VLMQ, "up", "--port", str(port)], env, output) as process:
        ready = wait_for_line(log, r"ready at http://", 180)
        url = ready.split("ready at ")[1].split()[0]
        photo = tmp_path / "shoe.png"
        photo.write_bytes(image_bytes(size=(320, 240), color="navy"))
        with photo.open("rb") as handle:
            created = requests.post(f"{url}/v1/jobs", files={"image": handle}, data={"task": "describe"}, timeout=10)
        assert created.status_code == 202, (created.text, log.read_text())
        job_url = created.json()["urls"]["self"]
        deadline = time.monotonic() + 10
        while (job := requests.get(job_url, timeout=5).json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"job not done within 10 s: {job}"
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        assert isinstance(job["result"]["text"], str) and job["result"]["usage"]["completion_tokens"] > 0
        assert "noise" in job["warnings"][0]
        page = requests.get(job["urls"]["page"], timeout=5)
        assert page.status_code == 200 and job["id"] in page.text
        cli = subprocess.run(
            [VLMQ, "submit", str(photo), "--task", "ocr", "--wait", "--url", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert cli.returncode == 0, cli.stderr
        printed = json.loads(cli.stdout)
        assert (printed["task"], printed["status"]) == ("ocr", "succeeded")
    assert process.returncode == 0
    assert not _port_open(port)


def test_vlmq_up_refuses_a_port_another_server_holds(tmp_path: Path) -> None:
    """Another server on the port answers `/readyz` with 200: `up` must not take that for its own readiness."""
    other = HTTPServer(("127.0.0.1", 0), _AlwaysReady)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    started = time.monotonic()
    try:
        result = subprocess.run(
            [VLMQ, "up", "--port", str(port)],
            env=vlmq_env(data_dir=str(tmp_path / "data")),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        other.shutdown()
    assert result.returncode == 1, result
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "another server may hold that port" in result.stderr
    assert "ready at" not in result.stdout
    assert time.monotonic() - started < 15
    assert not (tmp_path / "data").exists()  # refused before migrating or starting anything


class _AlwaysReady(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ready", "checks": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.mark.slow
def test_gpu_worker_loads_the_model_once_per_process(
    settings: Settings,
    client: FlaskClient,
    sessions: sessionmaker[Session],
    engine: Engine,
    png: bytes,
    tmp_path: Path,
) -> None:
    env = vlmq_env(settings, max_new_tokens="16")
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log, vlmq_process([VLMQ, "worker", "gpu"], env, log) as worker:
        job_ids = [submit(client, png, task=task).get_json()["id"] for task in ("describe", "ocr", "describe")]
        deadline = time.monotonic() + 120
        while True:
            statuses = [client.get(f"/v1/jobs/{job_id}").get_json()["status"] for job_id in job_ids]
            if all(status == "succeeded" for status in statuses):
                break
            assert "failed" not in statuses and time.monotonic() < deadline, (statuses, log_path.read_text())
            time.sleep(0.3)
    log = log_path.read_text()
    loads = re.findall(r"model \S+ loaded in worker process \S+:(\d+)", log)
    assert len(loads) == 1, log
    assert log.count("model warmed up in") == 1
    child_pid = int(loads[0])
    assert child_pid != worker.pid  # loaded in the forked child, never in the Celery parent
    with sessions() as session:
        workers = {session.get(Job, job_id).worker for job_id in job_ids}
    assert len(workers) == 1
    assert workers.pop().endswith(f":{child_pid}")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gpu_worker_with_an_impossible_setting_stops_with_a_clear_error(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("int8 works on this machine: it has CUDA")
    env = vlmq_env(settings, quantization="int8")
    result = subprocess.run([VLMQ, "worker", "gpu"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "int8" in result.stderr and "CUDA" in result.stderr
    assert "model could not be loaded" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_job_survives_a_kill_9_of_its_gpu_worker(
    settings: Settings,
    client: FlaskClient,
    sessions: sessionmaker[Session],
    engine: Engine,
    png: bytes,
    tmp_path: Path,
) -> None:
    # Its own data dir (for the beat schedule file); the model comes from the shared one.
    env = vlmq_env(
        settings, data_dir=str(tmp_path), heartbeat_interval_s="0.5", heartbeat_timeout_s="3", sweep_interval_s="1"
    )
    (tmp_path / "models").symlink_to(settings.data_dir / "models")
    logs = {role: (tmp_path / f"{role}.log").open("w") for role in ("gpu", "webhooks")}
    with (
        vlmq_process([VLMQ, "worker", "gpu"], env, logs["gpu"]),
        vlmq_process([VLMQ, "worker", "webhooks", "--beat"], env, logs["webhooks"]),
    ):
        # Greedy decoding of the tiny model runs the full budget: a few seconds to aim at.
        params = json.dumps({"max_new_tokens": 1200, "temperature": 0})
        job_id = submit(client, png, task="describe", params=params).get_json()["id"]
        deadline = time.monotonic() + 240  # two model loads (the first worker, its replacement) on a busy machine
        while (job := client.get(f"/v1/jobs/{job_id}").get_json())["status"] != "running":
            assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
            time.sleep(0.1)
        with sessions() as session:
            victim = int(session.get(Job, job_id).worker.rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        while (job := client.get(f"/v1/jobs/{job_id}").get_json())["status"] != "succeeded":
            assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
            time.sleep(0.3)
    assert job["attempts"] == 2
    assert job["result"]["usage"]["completion_tokens"] == 1200
    with sessions() as session:
        assert int(session.get(Job, job_id).worker.rsplit(":", 1)[1]) != victim


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_killed_gpu_workers_job_is_queued_again_within_seconds(
    settings: Settings,
    client: FlaskClient,
    sessions: sessionmaker[Session],
    engine: Engine,
    png: bytes,
    tmp_path: Path,
) -> None:
    """No sweeper runs and heartbeats time out after 60 s: only the supervisor, which sees its child die at once,
    can put the job back in the queue this soon."""
    env = vlmq_env(settings, heartbeat_timeout_s="60")
    log_path = tmp_path / "gpu.log"
    with log_path.open("w") as log, vlmq_process([VLMQ, "worker", "gpu"], env, log):
        params = json.dumps({"max_new_tokens": 1200, "temperature": 0})  # greedy: the full budget, seconds to aim at
        job_id = submit(client, png, task="describe", params=params).get_json()["id"]
        deadline = time.monotonic() + 240
        while (job := client.get(f"/v1/jobs/{job_id}").get_json())["status"] != "running":
            assert time.monotonic() < deadline and job["status"] in ("queued", "running"), (job, log_path.read_text())
            time.sleep(0.1)
        with sessions() as session:
            victim = int(session.get(Job, job_id).worker.rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while (job := client.get(f"/v1/jobs/{job_id}").get_json())["status"] == "running":
            assert time.monotonic() - killed < 5, (job, log_path.read_text())
            time.sleep(0.05)
        assert job["status"] == "queued", job
        while (job := client.get(f"/v1/jobs/{job_id}").get_json())["status"] != "succeeded":
            assert time.monotonic() < deadline and job["status"] in ("queued", "running"), (job, log_path.read_text())
            time.sleep(0.3)
    assert job["attempts"] == 2
    assert "1 of its running jobs requeued" in log_path.read_text()
