"""A private Redis server for the embedded default (`vlmq up`), with a password.

The password goes in a config file only its owner can read, not on the command line
(where `ps` shows it to every local user). Its log goes to a file in its data folder
(`redis_log`), as a packaged Redis logs to /var/log: its start-up lines and the
memory-overcommit warning of every start would otherwise bury `vlmq up`'s ready line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from vlmq.processes import spawn


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_url(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def redis_log(data_dir: Path) -> Path:
    """Where the server started on `data_dir` writes its log."""
    return data_dir / "redis.log"


def start_redis(data_dir: Path, port: int, password: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:`port` requiring `password`, persisting to `data_dir` (AOF)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: run `apt-get install redis-server` (scripts/setup.sh does)")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = data_dir / "redis.conf"
    config.unlink(missing_ok=True)
    with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(f"requirepass {password}\n")
    process = spawn(
        [
            binary,
            str(config),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            str(redis_log(data_dir)),
        ],
        env,
    )
    client = redis.Redis(port=port, password=password, socket_connect_timeout=1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"redis-server exited with code {process.returncode} (its log: {redis_log(data_dir)})")
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("redis-server did not answer within 20 s")
