"""`vlmq up`: the whole service on one machine, in the foreground.

Takes the web port first (refusing at once when another server holds it), migrates
the database, starts a private Redis, the web server, one GPU worker and
the light worker (webhooks, sweeper), waits until `/readyz` says ready, prints the
URL, and stops everything on Ctrl-C or SIGTERM, or when Redis or the web server dies.
A worker that exits is started again with backoff while the web stays up
(`vlmq.restarts`); one that cannot load its model stops everything, with its message.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import FrameType

import redis
import requests

from shared.down_reports import GPU_WORKER
from shared.migrate import upgrade_to_head
from shared.secret_text import masked_url
from shared.settings import Settings
from vlmq.processes import spawn, stop
from vlmq.redis_server import free_port, redis_log, redis_url, start_redis
from vlmq.restarts import RestartingWorkers
from vlmq.web_server import listen_on

READY_TIMEOUT_S = 600


def up(settings: Settings, host: str, port: int) -> int:
    try:
        listener = listen_on(host, port)
    except OSError as exc:
        print(
            f"vlmq: cannot listen on {host}:{port}: {exc.strerror or exc}; another server may hold that port "
            "(stop it, or choose another with --port)",
            file=sys.stderr,
            flush=True,
        )
        return 1
    with listener:
        return _run(settings, listener, host, port)


def _run(settings: Settings, listener: socket.socket, host: str, port: int) -> int:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"vlmq: database {masked_url(settings.sqlalchemy_url)}", flush=True)
    # A line per migration on a first start tells a user nothing (`vlmq db upgrade` keeps them); failures raise.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade_to_head(settings.sqlalchemy_url)

    env = child_environment(data_dir, host, port)
    redis_port = free_port()
    redis_password = secrets.token_urlsafe(24)  # a fresh one each start: only this run's processes know it
    env["VLMQ_REDIS_URL"] = redis_url(redis_port, redis_password)
    children: dict[str, subprocess.Popen[bytes]] = {
        "redis": start_redis(data_dir / "redis", redis_port, redis_password, env)
    }
    print(f"vlmq: redis on 127.0.0.1:{redis_port} (log: {redis_log(data_dir / 'redis')})", flush=True)

    stopping = False

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    python = sys.executable
    broker = redis.Redis.from_url(env["VLMQ_REDIS_URL"], socket_connect_timeout=3, socket_timeout=5)
    workers: RestartingWorkers | None = None
    try:
        commands = {
            GPU_WORKER: [python, "-m", "vlmq.cli", "worker", "gpu"],
            "light-worker": [python, "-m", "vlmq.cli", "worker", "webhooks", "--beat"],
        }
        workers = RestartingWorkers(commands, lambda argv: spawn(argv, env), broker, time.monotonic)
        web = [python, "-m", "vlmq.cli", "web", "--fd", str(listener.fileno())]
        children["web"] = spawn(web, env, pass_fds=(listener.fileno(),))
        url = env["VLMQ_SERVED_URL"]
        if settings.uses_placeholder_model:
            print("vlmq: no VLMQ_MODEL set: using the tiny random-weight model (outputs are noise)", flush=True)

        def fatal() -> str | None:
            """Why everything must stop now, if it must."""
            if (dead := _dead_child(children)) is not None:
                where = f" (its log: {redis_log(data_dir / 'redis')})" if dead == "redis" else ""
                return f"{dead} exited unexpectedly{where}"
            return workers.tend() if workers is not None else None

        ready = _wait_until_ready(url, fatal, lambda: stopping)
        if ready:
            print(f"vlmq: ready at {url}  (Ctrl-C to stop)", flush=True)
            if hint := _command_hint():
                print(hint, flush=True)
        while ready and not stopping:
            if (reason := fatal()) is not None:
                print(f"vlmq: {reason}; stopping everything", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
        return 0 if ready or stopping else 1
    finally:
        print("vlmq: stopping", flush=True)
        if "web" in children:
            stop(children["web"])
        if workers is not None:
            for process in reversed(workers.processes()):
                stop(process)
            with suppress(redis.RedisError):  # Redis dying is a reason to stop: then there is nothing to clear
                workers.forget_reports()
        stop(children["redis"])
        broker.close()


def child_environment(data_dir: Path, host: str, port: int) -> dict[str, str]:
    """The environment of the processes `up` starts: ours, plus where the data lives and the URL we serve on
    (links in webhook bodies use it when `VLMQ_PUBLIC_URL` is unset: `shared.public_url`)."""
    served_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return dict(os.environ, VLMQ_DATA_DIR=str(data_dir), VLMQ_SERVED_URL=served_url, PYTHONUNBUFFERED="1")


def _command_hint() -> str | None:
    """How to get this `vlmq` on PATH in another terminal, when it runs from a virtual environment that is not."""
    bin_dir = Path(sys.executable).parent
    found = shutil.which("vlmq")
    if not (bin_dir / "activate").exists() or (found and Path(found).resolve() == (bin_dir / "vlmq").resolve()):
        return None
    return f"vlmq: for the vlmq command in another terminal: source {bin_dir / 'activate'}"


def _dead_child(children: dict[str, subprocess.Popen[bytes]]) -> str | None:
    return next((name for name, child in children.items() if child.poll() is not None), None)


def _wait_until_ready(url: str, fatal: Callable[[], str | None], stopping: Callable[[], bool]) -> bool:
    """Poll /readyz, printing what is still missing every few seconds.

    Only our web server can answer: `up` holds the port since before it started.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_report = 0.0
    while time.monotonic() < deadline and not stopping():
        if (reason := fatal()) is not None:
            print(f"vlmq: {reason} during start-up (see its log above)", file=sys.stderr, flush=True)
            return False
        try:
            response = requests.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return True
            waiting = [name for name, check in response.json()["checks"].items() if not check["ok"]]
        except (requests.RequestException, ValueError, KeyError):
            waiting = ["web"]
        if time.monotonic() - last_report > 5:
            print(f"vlmq: starting, waiting for: {', '.join(waiting)}", flush=True)
            last_report = time.monotonic()
        time.sleep(0.5)
    return False
