"""Secrets stay out of output and off disk for others: settings errors, start-up lines, access logs,
the SQLite file, and the embedded Redis."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from shared.db import make_engine
from shared.secret_text import masked_url
from tests.support.live_service import vlmq_process
from vlmq import cli, redis_server
from vlmq.processes import stop
from vlmq.redis_server import free_port

PASSWORD = "hunter2-db-secret"
PG_URL = f"postgresql+psycopg://vlmq:{PASSWORD}@db.internal/vlmq"


def test_settings_errors_name_the_setting_not_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VLMQ_DATABASE_URL", PG_URL)
    monkeypatch.setenv("VLMQ_ENVIRONMENT", "production")  # refused: auth is off
    assert cli.main(["db", "upgrade"]) == 2
    error = capsys.readouterr().err
    assert "auth_enabled=false" in error and PASSWORD not in error
    monkeypatch.setenv("VLMQ_ENVIRONMENT", "embedded")
    monkeypatch.setenv("VLMQ_MAX_WAIT_S", "-1")
    assert cli.main(["db", "upgrade"]) == 2
    error = capsys.readouterr().err
    assert "VLMQ_MAX_WAIT_S" in error and PASSWORD not in error


def test_urls_are_printed_without_their_password() -> None:
    assert masked_url(PG_URL) == "postgresql+psycopg://vlmq:***@db.internal/vlmq"
    assert "***" in masked_url("redis://:s3cret@127.0.0.1:6379/0")


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "vlmq.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (secret TEXT)")
        connection.exec_driver_sql("INSERT INTO t VALUES ('whsec_x')")
        for file in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, f"{file.name} is readable by others"
    engine.dispose()


def test_the_embedded_redis_requires_its_password(tmp_path: Path) -> None:
    port = free_port()
    process = redis_server.start_redis(tmp_path / "redis", port, "pw-0123456789", dict(os.environ))
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis.from_url(redis_server.redis_url(port, "pw-0123456789")).ping()
        assert stat.S_IMODE((tmp_path / "redis" / "redis.conf").stat().st_mode) == 0o600
        assert "pw-0123456789" not in " ".join(process.args)  # type: ignore[arg-type]
    finally:
        stop(process)


def test_a_key_sent_as_basic_auth_user_stays_out_of_the_access_log(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = dict(os.environ, VLMQ_DATA_DIR=str(tmp_path), VLMQ_REDIS_URL=redis_url)
    command = [sys.executable, "-m", "vlmq.cli", "web", "--port", str(port), "--workers", "1"]
    with vlmq_process(command, env, subprocess.PIPE) as server:
        for _ in range(300):
            try:
                # Not a health probe: their usual answers are left out of the access log (vlmq/web_server.py).
                response = requests.get(
                    f"http://127.0.0.1:{port}/openapi.json", auth=("vlmq_topsecretkey", ""), timeout=5
                )
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert response.status_code == 200
    log = server.stdout.read().decode()  # type: ignore[union-attr]
    assert "GET /openapi.json" in log
    assert "vlmq_topsecretkey" not in log
