"""The real web server (gunicorn): it keeps an idle client connection open past common client idle times, so a
pooled connection is not reset under the client that reuses it, and its access log holds no CSRF token."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.migrate import upgrade_to_head
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process, wait_for_line
from vlmq.redis_server import free_port

IDLE_S = 3.0  # gunicorn's own default (2 s) closed the connection before this


@pytest.fixture
def web_server(tmp_path: Path, redis_url: str) -> Iterator[tuple[int, Path]]:
    """`vlmq web` on SQLite; yields its port and the file its output goes to."""
    database = f"sqlite:///{tmp_path / 'vlmq.db'}"
    upgrade_to_head(database)
    port = free_port()
    env = vlmq_env(data_dir=str(tmp_path), database_url=database, redis_url=redis_url)
    command = [VLMQ, "web", "--port", str(port), "--workers", "1", "--threads", "2"]
    log = tmp_path / "web.log"
    with log.open("wb") as output, vlmq_process(command, env, output):
        yield port, log


def _connect(port: int) -> http.client.HTTPConnection:
    """A connection that has had one answer, once the server is up."""
    deadline = time.monotonic() + 30
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "vlmq web did not start"
            connection.close()
            time.sleep(0.1)
    first = connection.getresponse()
    first.read()
    assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
    return connection


def test_a_connection_idle_for_seconds_is_still_served(web_server: tuple[int, Path]) -> None:
    connection = _connect(web_server[0])
    local = connection.sock.getsockname()
    time.sleep(IDLE_S)
    connection.request("GET", "/healthz")
    again = connection.getresponse()
    again.read()
    assert again.status == 200
    assert connection.sock.getsockname() == local, "the same connection served both"
    connection.close()


def test_the_access_log_blanks_csrf_tokens(web_server: tuple[int, Path]) -> None:
    port, log = web_server
    connection = _connect(port)
    connection.request("GET", "/v1/jobs?limit=1&csrf_token=f00dfeed1234&x=1")
    connection.getresponse().read()
    connection.close()
    line = wait_for_line(log, r'"GET /v1/jobs\?', timeout_s=10)
    assert "f00dfeed1234" not in log.read_text()
    assert "limit=1&csrf_token=-&x=1" in line
