"""Small helpers the tests share."""

from __future__ import annotations

import base64
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import GPU_QUEUE
from shared.models import Batch, Job, StoredImage
from shared.settings import Settings

VLMQ = str(Path(sys.executable).with_name("vlmq"))


def submit(client: FlaskClient, image: bytes | None, **fields: Any) -> Any:
    """POST /v1/jobs as multipart form data."""
    data: dict[str, Any] = {key: value for key, value in fields.items() if key != "headers"}
    if image is not None:
        data["image"] = (io.BytesIO(image), "photo.png")
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data", headers=fields.get("headers", {}))


def data_uri(image: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def job_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def queued_messages(broker: redis.Redis) -> int:
    return broker.llen(GPU_QUEUE)


def wait_for_line(log: Path, pattern: str, timeout_s: float) -> str:
    """Wait until the process log has a line matching `pattern`; return that line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.2)
    raise AssertionError(f"no line matching {pattern!r}; output was:\n{log.read_text()}")


def worker_env(settings: Settings | None = None, **overrides: str) -> dict[str, str]:
    """The test's environment without stray VLMQ_* values, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMQ_")}
    if settings is not None:
        env.update(
            VLMQ_DATA_DIR=str(settings.data_dir),
            VLMQ_DATABASE_URL=settings.sqlalchemy_url,
            VLMQ_REDIS_URL=settings.redis_url,
        )
    return env | {"PYTHONUNBUFFERED": "1"} | {f"VLMQ_{k.upper()}": v for k, v in overrides.items()}


def batch_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Batch)) or 0


def assert_nothing_stored(sessions: sessionmaker[Session], broker: redis.Redis) -> None:
    """No batch, job, image or queued message: what a refused submission must leave."""
    assert (batch_rows(sessions), job_count(sessions), queued_messages(broker)) == (0, 0, 0)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredImage)) == 0
