"""Real servers for the tests: a Redis server (restartable), a throwaway PostgreSQL cluster, a Flask app on loopback.

When a server binary is missing the tests that need it skip locally but fail on
CI (`CI=true`), so a CI machine without Redis or PostgreSQL cannot pass silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from vlmq.processes import stop
from vlmq.redis_server import free_port, redis_url, start_redis


def missing(what: str, why: str = "is not installed (scripts/setup.sh installs it)") -> None:
    """Skip, or fail on CI, because `what` is not there."""
    message = f"{what} {why}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class RedisServer:
    """A private redis-server on loopback, started the way `vlmq up` starts its own; a test may stop
    and start it again on the same port and password to play a Redis restart."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._port, self._password = free_port(), secrets.token_hex(16)
        self.url = redis_url(self._port, self._password)  # database 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = start_redis(self._workdir, self._port, self._password, dict(os.environ))

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process, grace_s=10)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """A started `RedisServer`, stopped at exit."""
    if shutil.which("redis-server") is None:
        missing("redis-server")
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class PostgresCluster:
    """A throwaway cluster; a test may stop and start it to play a database outage."""

    url: str
    _pg_ctl: list[str]

    def stop(self) -> None:
        subprocess.run([*self._pg_ctl, "-m", "immediate", "stop"], check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run([*self._pg_ctl, "-w", "start"], check=True, capture_output=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """initdb + pg_ctl a cluster in a temporary folder (as `postgres` when root).

    Its `url` is an admin URL for database `postgres`; tests create databases in it.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        missing("PostgreSQL (initdb, pg_ctl)")
    workdir = Path(tempfile.mkdtemp(prefix="vlmq-pg-"))
    data, sockets = workdir / "data", workdir / "sock"
    sockets.mkdir(exist_ok=True)
    run_as: list[str] = []
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        user = "postgres"
        shutil.chown(workdir, user)
        shutil.chown(sockets, user)
        run_as = ["runuser", "-u", user, "--"]
    port = free_port()
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-U", user, "-A", "trust", "--no-sync"], check=True, capture_output=True
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    control = [*run_as, pg_ctl, "-D", str(data), "-o", options, "-l", str(workdir / "log")]
    cluster = PostgresCluster(f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres", control)
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run([*control, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve `app` over real HTTP on loopback; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
