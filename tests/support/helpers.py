"""Small helpers the tests share."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import redis
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.celery_app import GPU_QUEUES
from shared.clock import utcnow
from shared.models import Batch, Job, StoredImage


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


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
    """Job messages waiting in either GPU lane."""
    return sum(broker.llen(queue) for queue in GPU_QUEUES)


def batch_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Batch)) or 0


def assert_nothing_stored(sessions: sessionmaker[Session], broker: redis.Redis) -> None:
    """No batch, job, image or queued message: what a refused submission must leave."""
    assert (batch_rows(sessions), job_count(sessions), queued_messages(broker)) == (0, 0, 0)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredImage)) == 0


def wait_for_only_job(sessions: sessionmaker[Session], timeout_s: float = 10.0) -> Job:
    """The one job a request in another thread is creating, once it is committed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sessions() as session:
            jobs = session.scalars(select(Job)).all()
        if jobs:
            (job,) = jobs
            return job
        time.sleep(0.02)
    raise AssertionError("no job was created")


def finish_like_a_worker(sessions: sessionmaker[Session], job_id: str, result: dict[str, Any]) -> None:
    """Run the job's transitions as a GPU worker would, with a result the test chose."""
    with sessions.begin() as session:
        jobs.start(session, job_id, "test-worker", utcnow())
    with sessions.begin() as session:
        assert jobs.succeed(session, job_id, result, "test-model", 0.1, utcnow())


def finish(sessions: sessionmaker[Session], job_id: str, text: str, data: dict[str, Any] | None = None) -> None:
    """Move a job through the real state machine to `succeeded` with a chosen result (no model needed)."""
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "test-worker", utcnow())
        assert jobs.succeed(session, job_id, {"text": text, "data": data, "usage": {}}, "test-model", 0.1, utcnow())
