"""The real web server (gunicorn) keeps an idle client connection open past common client idle times, so a
pooled connection is not reset under the client that reuses it."""

from __future__ import annotations

import http.client
import subprocess
import time
from pathlib import Path

import pytest

from shared.migrate import upgrade_to_head
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process
from vlmq.redis_server import free_port

IDLE_S = 3.0  # gunicorn's own default (2 s) closed the connection before this


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_connection_idle_for_seconds_is_still_served(tmp_path: Path, database_url: str, redis_url: str) -> None:
    upgrade_to_head(database_url)
    port = free_port()
    env = vlmq_env(data_dir=str(tmp_path), database_url=database_url, redis_url=redis_url)
    command = [VLMQ, "web", "--port", str(port), "--workers", "1", "--threads", "2"]
    with vlmq_process(command, env, subprocess.DEVNULL):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        deadline = time.monotonic() + 30
        while True:
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
        local = connection.sock.getsockname()
        time.sleep(IDLE_S)
        connection.request("GET", "/healthz")
        again = connection.getresponse()
        again.read()
        assert again.status == 200
        assert connection.sock.getsockname() == local, "the same connection served both"
        connection.close()
