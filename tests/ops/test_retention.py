"""Retention: the sweeper empties images after their jobs end and results after their period;
`DELETE /v1/jobs/{id}` removes a finished job and its data at once, and neither leaves a copy on disk."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.clock import utcnow
from shared.models import Job, StoredImage, WebhookDelivery
from shared.settings import Settings
from tests.support.helpers import image_bytes, submit
from tests.support.webhook_receiver import Receiver
from worker.sweeper import sweep

HOUR = timedelta(hours=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",)})


def finish(sessions: sessionmaker[Session], job_id: str, text: str = "A red mug.") -> None:
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "gpu-test", utcnow())
        assert jobs.succeed(session, job_id, {"text": text, "data": None}, "tiny", 0.1, utcnow())


def image_of(sessions: sessionmaker[Session], job_id: str) -> StoredImage | None:
    with sessions() as session:
        job = session.get(Job, job_id)
        return session.get(StoredImage, job.image_id) if job else None


def test_the_sweeper_empties_images_and_results_after_their_retention(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], celery_app: Celery, broker: redis.Redis
) -> None:
    settings = settings.model_copy(update={"image_retention_s": 3600, "result_retention_s": 3 * 3600})
    photo = image_bytes(color="purple")
    done = submit(client, photo, task="ask", prompt="What is it?").get_json()["id"]
    finish(sessions, done)
    kept = submit(client, image_bytes(color="teal"), task="describe").get_json()["id"]  # still queued

    sweep(settings, sessions, celery_app, broker, utcnow() + HOUR / 2)
    assert image_of(sessions, done).purged_at is None, "within the grace period"
    report = sweep(settings, sessions, celery_app, broker, utcnow() + 2 * HOUR)
    assert (report.purged_images, report.purged_results) == (1, 0)
    purged = image_of(sessions, done)
    assert purged.data == b"" and purged.purged_at is not None
    assert image_of(sessions, kept).data != b"", "a queued job's image is kept"
    refused = submit(client, None, task="ask", prompt="And the size?", params=json.dumps({"parent_job_id": done}))
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "image_deleted"
    # The same photo sent again is stored again.
    again = submit(client, photo, task="describe").get_json()["id"]
    assert image_of(sessions, again).data == photo

    report = sweep(settings, sessions, celery_app, broker, utcnow() + 4 * HOUR)
    assert report.purged_results == 1
    body = client.get(f"/v1/jobs/{done}").get_json()
    assert body["status"] == "succeeded" and body["result"] is None


def test_delete_removes_a_finished_job_and_its_data(
    client: FlaskClient, sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    job_id = submit(client, image_bytes(color="olive"), task="describe", webhook=receiver.url).get_json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 409  # still queued
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    with sessions() as session:
        image_id = session.get(Job, job_id).image_id
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 404
    with sessions() as session:
        assert session.get(StoredImage, image_id) is None
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_delete_keeps_an_image_another_job_uses(client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    photo = image_bytes(color="navy")
    first = submit(client, photo, task="ask", prompt="Colour?").get_json()["id"]
    finish(sessions, first)
    follow_up = submit(client, None, task="ask", prompt="Size?", params=json.dumps({"parent_job_id": first}))
    assert follow_up.status_code == 202
    assert client.delete(f"/v1/jobs/{first}").status_code == 204
    with sessions() as session:
        child = session.get(Job, follow_up.get_json()["id"])
        assert child.parent_job_id is None
        assert session.get(StoredImage, child.image_id).data == photo


def _noise_png() -> bytes:
    """A photo no compression shrinks, so a slice of it found on disk is a copy of it."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (96, 96), os.urandom(96 * 96 * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _on_disk(settings: Settings, needle: bytes) -> list[str]:
    """The SQLite files (database, -wal, -shm) holding `needle`."""
    database = Path(make_url(settings.sqlalchemy_url).database or "")
    files = [path for path in database.parent.glob(database.name + "*") if path.is_file()]
    return [path.name for path in files if needle in path.read_bytes()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["delete", "purge"])
def test_deleted_images_and_results_leave_no_copy_in_the_sqlite_files(
    how: str,
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
) -> None:
    photo = _noise_png()
    result = "secret-result-" + os.urandom(16).hex()
    job_id = submit(client, photo, task="describe").get_json()["id"]
    finish(sessions, job_id, result)
    needles = {"photo": photo[len(photo) // 2 : len(photo) // 2 + 256], "result": result.encode()}
    assert all(_on_disk(settings, needle) for needle in needles.values()), "the test sees what is stored"
    if how == "delete":
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    else:
        retention = {"image_retention_s": 60, "result_retention_s": 60}
        report = sweep(settings.model_copy(update=retention), sessions, celery_app, broker, utcnow() + HOUR)
        assert (report.purged_images, report.purged_results) == (1, 1)
    assert {name: _on_disk(settings, needle) for name, needle in needles.items()} == {"photo": [], "result": []}
