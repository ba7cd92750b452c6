"""Does a hostile client stall the web server? `/healthz` latency while 40 `image_url` submissions point at a
host that trickles its response headers one byte every half second (issue 8).

Starts a private Redis, migrates a SQLite database and runs `vlmq web` (gunicorn, the production server) on
loopback with `VLMQ_IMAGE_URL_ALLOW_HOSTS=127.0.0.1` so the trickling host may be reached; then sends the hostile
submissions from threads and polls `/healthz` every 50 ms until they have all been answered. Writes
`$OUT/hostile_health.json` (or prints it): health latency percentiles before and during the attack, and how each
hostile submission ended (status code and seconds).

    PYTHONPATH=. .venv/bin/python bench/hostile_health.py
"""

from __future__ import annotations

import json
import os
import secrets
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from shared.migrate import upgrade_to_head
from vlmq.processes import stop
from vlmq.redis_server import free_port, start_redis

HOSTILE = 40
TRICKLE_EVERY_S = 0.5


class Trickler(socketserver.BaseRequestHandler):
    """Answers any request with status-line bytes, one every TRICKLE_EVERY_S, until the client leaves."""

    def handle(self) -> None:
        self.request.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" * 1000:
            try:
                self.request.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(TRICKLE_EVERY_S)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(at(0.5) * 1000, 1), "p99_ms": round(at(0.99) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1), "mean_ms": round(statistics.fmean(ordered) * 1000, 1)}  # fmt: skip


def health_latencies(url: str, until: threading.Event | float) -> list[float]:
    times = []
    while not (until.is_set() if isinstance(until, threading.Event) else time.monotonic() > until):
        started = time.perf_counter()
        requests.get(f"{url}/healthz", timeout=60).raise_for_status()
        times.append(time.perf_counter() - started)
        time.sleep(0.05)
    return times


def hostile_submit(url: str, target: str) -> dict[str, Any]:
    started = time.perf_counter()
    body = {"task": "describe", "image_url": target}
    response = requests.post(f"{url}/v1/jobs", json=body, timeout=120)
    code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
    return {"status": response.status_code, "code": code, "seconds": round(time.perf_counter() - started, 2)}


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="vlmq-hostile-"))
    trickler = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickler)
    trickler.daemon_threads = True
    threading.Thread(target=trickler.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{trickler.server_address[1]}/photo.png"
    redis_port, web_port, password = free_port(), free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{web_port}"
    database = f"sqlite:///{root / 'vlmq.db'}"
    repo = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, VLMQ_DATA_DIR=str(root), VLMQ_DATABASE_URL=database,
               VLMQ_REDIS_URL=f"redis://:{password}@127.0.0.1:{redis_port}/0", VLMQ_IMAGE_URL_ALLOW_HOSTS="127.0.0.1",
               PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    upgrade_to_head(database)
    redis = start_redis(root / "redis", redis_port, password, env)
    web = subprocess.Popen([sys.executable, "-m", "vlmq.cli", "web", "--port", str(web_port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        for _ in range(200):
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        quiet = health_latencies(url, time.monotonic() + 5)
        done = threading.Event()
        during: list[float] = []
        poller = threading.Thread(target=lambda: during.extend(health_latencies(url, done)))
        poller.start()
        with ThreadPoolExecutor(HOSTILE) as pool:
            outcomes = list(pool.map(lambda _: hostile_submit(url, target), range(HOSTILE)))
        done.set()
        poller.join()
    finally:
        stop(web)
        stop(redis)
        trickler.shutdown()
    result = {
        "machine": f"{os.cpu_count()} cores",
        "hostile_submissions": HOSTILE,
        "trickle": f"one response-header byte every {TRICKLE_EVERY_S} s, forever",
        "healthz_quiet": percentiles(quiet),
        "healthz_during_attack": percentiles(during),
        "hostile_outcomes": dict(Counter(f"{o['status']} {o['code']}" for o in outcomes)),
        "hostile_request_duration": percentiles([o["seconds"] for o in outcomes]),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "hostile_health.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
