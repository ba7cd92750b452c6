"""Small helpers the tests share."""

from __future__ import annotations

import base64
import io
from typing import Any

import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import GPU_QUEUE
from shared.models import Batch, Job, StoredImage


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


def batch_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Batch)) or 0


def assert_nothing_stored(sessions: sessionmaker[Session], broker: redis.Redis) -> None:
    """No batch, job, image or queued message: what a refused submission must leave."""
    assert (batch_rows(sessions), job_count(sessions), queued_messages(broker)) == (0, 0, 0)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredImage)) == 0
