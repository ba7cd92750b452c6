"""A vlmq service as production starts it (Redis, `vlmq worker gpu`, `vlmq web`), and clients of its API.

The plumbing `gpu_service_bench.py` measures through: start and stop the stack with its logs, build the
benchmark checkpoint in a subprocess, submit and poll single jobs, submit and read batches.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import requests
from gpu_engine_bench import product_photo  # sibling script in bench/

from shared.migrate import upgrade_to_head
from vlmq.processes import stop
from vlmq.redis_server import free_port, redis_url, start_redis

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"succeeded", "failed", "canceled"}


class Service:
    """Redis, `vlmq worker gpu` and `vlmq web` as production starts them, with logs in `log_dir`."""

    def __init__(
        self, root: Path, log_dir: Path, model: Path, quantization: str, tiny: bool, overrides: dict[str, str]
    ) -> None:
        data_dir = root / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        redis_port, web_port = free_port(), free_port()
        redis_password = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{web_port}"
        pythonpath = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(pythonpath),
            PYTHONUNBUFFERED="1",
            VLMQ_DATA_DIR=str(data_dir),
            VLMQ_DATABASE_URL=f"sqlite:///{data_dir / 'vlmq.db'}",
            VLMQ_REDIS_URL=redis_url(redis_port, redis_password),
            VLMQ_MODEL=str(model),
            VLMQ_QUANTIZATION=quantization,
            VLMQ_RATE_LIMIT="1000/second",  # the bench polls fast from one tenant; the limiter is not measured
            VLMQ_MAX_BATCH_ITEMS="2048",  # a saturation run may be one batch of four waves of 128 slots
        )
        self.env.update(overrides)
        if tiny:
            self.env["VLMQ_DEVICE"] = "cpu"
        upgrade_to_head(self.env["VLMQ_DATABASE_URL"])
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.children["redis"] = start_redis(data_dir / "redis", redis_port, redis_password, self.env)
        self.worker_log, self.web_log = log_dir / "worker.log", log_dir / "web.log"
        self.worker_started = time.monotonic()
        self.children["worker"] = self._spawn(["worker", "gpu"], self.worker_log)
        self.children["web"] = self._spawn(["web", "--port", str(web_port)], self.web_log)

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "vlmq.cli", *args],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds from starting the worker until /readyz answers 200 (database, broker, a live GPU worker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [name for name, child in self.children.items() if child.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited during start-up; see {self.worker_log} and {self.web_log}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return round(time.monotonic() - self.worker_started, 1)
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"not ready within {timeout_s:g} s; see {self.worker_log}")

    @property
    def parent_pid(self) -> int:
        """The supervisor: `vlmq worker gpu` forks the GPU worker process and never touches CUDA."""
        return self.children["worker"].pid

    def child_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.parent_pid).children()]

    def web_pids(self) -> list[int]:
        web = psutil.Process(self.children["web"].pid)
        return [web.pid, *(child.pid for child in web.children(recursive=True))]

    def close(self) -> None:
        for name in ("web", "worker", "redis"):
            if name in self.children:
                stop(self.children[name])


def build_model(root: Path, tiny: bool) -> float:
    """Build the checkpoint in a child process (CUDA for the full size) and return the seconds it took."""
    code = (
        "import sys; from pathlib import Path; from worker.inference.placeholder.checkpoint import build_checkpoint; "
        "build_checkpoint(Path(sys.argv[1]), 'glm4v', full_size=sys.argv[2] == 'full', device=sys.argv[3])"
    )
    started = time.perf_counter()
    args = [str(root), "tiny" if tiny else "full", "cpu" if tiny else "cuda"]
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=REPO)
    return round(time.perf_counter() - started, 1)


def jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    product_photo(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


def job_record(job: dict[str, Any], e2e_s: float, submit_s: float | None) -> dict[str, Any]:
    """The numbers kept per job; overhead is what is neither queueing nor inference (HTTP, SQL, polling)."""
    metrics = job.get("metrics") or {}
    queue_s, inference_s = metrics.get("queue_s"), metrics.get("inference_s")
    usage = (job.get("result") or {}).get("usage") or {}
    record = {
        "job_id": job["id"],
        "status": job["status"],
        "error": job.get("error"),
        "submit_s": submit_s,
        "queue_s": queue_s,
        "inference_s": inference_s,
        "e2e_s": round(e2e_s, 3),
        "overhead_s": round(e2e_s - queue_s - inference_s, 3) if None not in (queue_s, inference_s) else None,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "created_at": job.get("created_at"),
        "completed_at": job.get("completed_at"),
    }
    if job["task"] == "attributes":
        record["valid_json"] = (job.get("result") or {}).get("data") is not None
    return record


class Client:
    """The API as a shop would use it: multipart submits, then polling `GET /v1/jobs/{id}`."""

    def __init__(self, url: str, image: bytes, timeout_s: float) -> None:
        self.url, self.image, self.timeout_s = url, image, timeout_s
        self.http = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self.http, "session"):
            self.http.session = requests.Session()
        return self.http.session

    def get_job(self, job_id: str) -> dict[str, Any]:
        response = self._session().get(f"{self.url}/v1/jobs/{job_id}", timeout=30)
        response.raise_for_status()
        return response.json()

    def submit(self, fields: dict[str, Any], with_image: bool = True) -> dict[str, Any]:
        """Submit one job (multipart, like `curl -F`); the 202's job."""
        form = {k: (None, json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items()}
        if with_image:
            form["image"] = ("product.jpg", self.image, "image/jpeg")
        response = self._session().post(f"{self.url}/v1/jobs", files=form, timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def cancel(self, job_id: str) -> int:
        """Cancel a job; the answer's status (409: it had already ended)."""
        return self._session().post(f"{self.url}/v1/jobs/{job_id}/cancel", timeout=30).status_code

    def run_job(self, fields: dict[str, Any], with_image: bool = True, poll_s: float = 0.05) -> dict[str, Any]:
        """Submit one job and poll it until it ends."""
        started = time.perf_counter()
        job = self.submit(fields, with_image)
        submit_s = round(time.perf_counter() - started, 4)
        deadline = started + self.timeout_s
        while job["status"] not in TERMINAL and time.perf_counter() < deadline:
            time.sleep(poll_s)
            job = self.get_job(job["id"])
        return job_record(job, time.perf_counter() - started, submit_s)

    def chat(self, max_tokens: int) -> dict[str, Any]:
        """One OpenAI-style chat call (held open until the answer); its job is then read for the metrics."""
        data_uri = "data:image/jpeg;base64," + base64.b64encode(self.image).decode()
        body = {
            "model": "glm-4.6v-flash",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What material is this bag?"},
                {"type": "image_url", "image_url": {"url": data_uri}},
            ]}],
        }  # fmt: skip
        started = time.perf_counter()
        response = self._session().post(f"{self.url}/v1/chat/completions", json=body, timeout=self.timeout_s)
        e2e_s = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"chat answered {response.status_code}: {response.text[:300]}")
        job = self.get_job(response.json()["id"].removeprefix("chatcmpl-"))
        return job_record(job, e2e_s, None) | {"http_status": response.status_code}


class Batches:
    """Catalogue-sized work through `POST /v1/batches`, as a shop would send it."""

    def __init__(self, url: str, image: bytes) -> None:
        self.url, self.image = url, image
        self.http = requests.Session()

    def submit(self, n: int, fields: dict[str, Any]) -> str:
        form = [(k, (None, json.dumps(v) if isinstance(v, dict) else str(v))) for k, v in fields.items()]
        form += [("image", (f"p{i}.jpg", self.image, "image/jpeg")) for i in range(n)]
        response = self.http.post(f"{self.url}/v1/batches", files=form, timeout=300)
        if response.status_code != 202:
            raise RuntimeError(f"batch submit answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    def wait(self, batch_id: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (batch := self.http.get(f"{self.url}/v1/batches/{batch_id}", timeout=30).json())["status"] == "running":
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return batch

    def jobs(self, batch_id: str) -> list[dict[str, Any]]:
        jobs, cursor = [], None
        while True:
            query = {"batch_id": batch_id, "limit": 500} | ({"cursor": cursor} if cursor else {})
            page = self.http.get(f"{self.url}/v1/jobs", params=query, timeout=60).json()
            jobs += page["data"]
            if not (cursor := page.get("next_cursor")):
                return jobs

    def cancel(self, batch_id: str) -> None:
        self.http.post(f"{self.url}/v1/batches/{batch_id}/cancel", timeout=120)
