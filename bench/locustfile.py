"""Locust users for the HTTP API: job submits and job status reads.

`bench/load_test.py` drives it (servers, phases, results); by hand against a running service:

    .venv/bin/locust -f bench/locustfile.py --headless -u 8 -r 8 -t 20s --host http://127.0.0.1:8000 SubmitUser

Environment: `VLMQ_API_KEY` (sent as a bearer token when set), `LOAD_RATE` (requests per second per
user; unset: each user sends its next request as soon as the last one is answered), `LOAD_IDS_IN`
(job ids to read, one a line), `LOAD_SUMMARY` (a JSON file written at the end: per request name the
count, rate, latency percentiles and status codes, and the ids of every accepted job).
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from locust import constant, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from PIL import Image, ImageDraw

SUBMIT, READ = "POST /v1/jobs", "GET /v1/jobs/{id}"
ACCEPTED: list[str] = []
CODES: dict[str, Counter[int]] = defaultdict(Counter)
_started = [0.0]


def _photo() -> str:
    """A 320x240 JPEG data URI (about 6 KB): the web side validates and stores it like a real photo."""
    image = Image.new("RGB", (320, 240), (235, 232, 225))
    draw = ImageDraw.Draw(image)
    draw.rectangle((64, 48, 256, 192), fill=(150, 90, 40))
    draw.text((20, 20), "VLMQ LEATHER CO.", fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


BODY = json.dumps({"task": "describe", "image": _photo(), "metadata": {"source": "load-test"}})


def _wait_time() -> Any:
    rate = os.environ.get("LOAD_RATE")
    return constant_throughput(float(rate)) if rate else constant(0)


class _ApiUser(FastHttpUser):
    abstract = True
    wait_time = _wait_time()
    # Fail slow answers as errors instead of hanging the run (a 60 s wait would hide shedding).
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        key = os.environ.get("VLMQ_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _stamped(self, **extra: str) -> dict[str, str]:
        """The headers of one request, stamped as the shipped proxy stamps it (the web sheds by queue time)."""
        return {**self.headers, **extra, "X-Request-Start": f"t={time.time() * 1000:.0f}"}

    def _expect(self, name: str, response: Any, code: int) -> None:
        CODES[name][response.status_code] += 1
        if response.status_code != code:
            response.failure(f"HTTP {response.status_code}")


class SubmitUser(_ApiUser):
    """Submits one photo per request (JSON with a data URI) and keeps the accepted job's id."""

    @task
    def submit(self) -> None:
        headers = self._stamped(**{"Content-Type": "application/json"})
        with self.client.post("/v1/jobs", data=BODY, headers=headers, name=SUBMIT, catch_response=True) as response:
            self._expect(SUBMIT, response, 202)
            if response.status_code == 202:
                ACCEPTED.append(response.json()["id"])


class ReadUser(_ApiUser):
    """Reads the status of jobs submitted earlier (ids from `LOAD_IDS_IN`), picked at random."""

    def on_start(self) -> None:
        super().on_start()
        path = os.environ.get("LOAD_IDS_IN")
        self.ids = Path(path).read_text().split() if path else []
        if not self.ids:
            raise RuntimeError("ReadUser needs LOAD_IDS_IN: a file of job ids to read")

    @task
    def read(self) -> None:
        job_id = random.choice(self.ids)
        with self.client.get(f"/v1/jobs/{job_id}", headers=self._stamped(), name=READ, catch_response=True) as response:
            self._expect(READ, response, 200)


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    _started[0] = time.monotonic()


@events.test_stop.add_listener
def _on_stop(environment: Environment, **_: Any) -> None:
    path = os.environ.get("LOAD_SUMMARY")
    if not path:
        return
    elapsed = time.monotonic() - _started[0]
    summary: dict[str, Any] = {"elapsed_s": round(elapsed, 2), "accepted_ids": ACCEPTED, "requests": {}}
    for (name, _method), entry in environment.stats.entries.items():
        summary["requests"][name] = {
            "count": entry.num_requests,
            "failures": entry.num_failures,
            "per_s": round(entry.num_requests / elapsed, 1),
            "p50_ms": entry.get_response_time_percentile(0.50),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "max_ms": round(entry.max_response_time or 0, 1),
            "codes": {str(code): n for code, n in sorted(CODES[name].items())},
        }
    Path(path).write_text(json.dumps(summary, indent=1))
