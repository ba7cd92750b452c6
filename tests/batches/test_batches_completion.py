"""`batch.completed`: written once, with the last job's terminal transition, delivered signed; never lost."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa
from celery import Celery
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from shared import jobs
from shared.clock import utcnow
from shared.models import Batch, Job, WebhookDelivery
from shared.settings import Settings
from shared.webhooks.tenant_secrets import current_secret
from tests.support.helpers import data_uri, image_bytes
from tests.support.webhook_receiver import Receiver
from worker.context import WorkerContext
from worker.runner import run_job
from worker.sweeper import sweep
from worker.webhooks.delivery import deliver

PHOTOS = [image_bytes(color=color) for color in ("red", "green", "blue")]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",), "public_url": "https://vlmq.example.com"})


def submit_batch(client: FlaskClient, webhook: str | None, count: int = 2) -> tuple[str, list[str]]:
    """A batch of `count` photos; returns its id and its job ids in submission order."""
    body = {"task": "describe", "items": [{"image": data_uri(photo)} for photo in PHOTOS[:count]]}
    if webhook is not None:
        body |= {"webhook": webhook, "webhook_events": ["completed"]}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 202, response.get_json()
    batch_id = response.get_json()["id"]
    lines = client.get(f"/v1/batches/{batch_id}/results").get_data(as_text=True).splitlines()
    return batch_id, [json.loads(line)["job_id"] for line in lines]


def batch_events(sessions: sessionmaker[Session], batch_id: str) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(
            session.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.batch_id == batch_id, WebhookDelivery.event_type == "batch.completed"
                )
            )
        )


def test_the_last_job_completes_the_batch_and_one_signed_event_arrives(
    client: FlaskClient, worker_context: WorkerContext, webhook_context: WorkerContext, receiver: Receiver
) -> None:
    batch_id, job_ids = submit_batch(client, receiver.url, count=3)
    assert client.post(f"/v1/jobs/{job_ids[1]}/cancel").status_code == 200
    assert run_job(worker_context, job_ids[0]) == "succeeded"
    assert batch_events(worker_context.sessions, batch_id) == []
    assert client.get(f"/v1/batches/{batch_id}").get_json()["status"] == "running"
    assert run_job(worker_context, job_ids[2]) == "succeeded"
    assert run_job(worker_context, job_ids[2]) == "skipped"  # a duplicate message changes nothing

    [event] = batch_events(worker_context.sessions, batch_id)
    assert event.job_id is None and event.persistent and event.dispatched_at is not None  # sent after commit
    batch = client.get(f"/v1/batches/{batch_id}").get_json()
    assert batch["status"] == "completed" and batch["completed_at"] is not None
    assert deliver(webhook_context, event.id, utcnow()) == "delivered"
    assert deliver(webhook_context, event.id, utcnow()) == "done"

    [request] = receiver.wait_for(1)
    time.sleep(0.2)
    assert len(receiver.requests) == 1 and request.headers["webhook-id"] == event.id
    with webhook_context.sessions.begin() as session:
        secret = current_secret(session, webhook_context.settings, "default", utcnow())
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "batch.completed"
    data = payload["data"]
    assert (data["id"], data["status"], data["total"], data["progress"]) == (batch_id, "completed", 3, 1.0)
    assert data["counts"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 0, "canceled": 1}
    assert data["completed_at"] == batch["completed_at"]
    assert data["urls"]["results"] == f"https://vlmq.example.com/v1/batches/{batch_id}/results"


def test_the_tenant_default_endpoint_gets_the_event_and_none_without_one(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    silent_id, silent_jobs = submit_batch(client, None, count=1)
    with sessions.begin() as session:
        assert jobs.cancel(session, silent_jobs[0], utcnow())
    assert batch_events(sessions, silent_id) == []
    assert client.get(f"/v1/batches/{silent_id}").get_json()["status"] == "completed"

    with sessions.begin() as session:
        session.execute(sa.text("UPDATE tenants SET webhook_url = 'http://127.0.0.1:9/tenant' WHERE id = 'default'"))
    batch_id, job_ids = submit_batch(client, None, count=1)
    with sessions.begin() as session:
        assert jobs.cancel(session, job_ids[0], utcnow())
    [event] = batch_events(sessions, batch_id)
    assert event.url == "http://127.0.0.1:9/tenant"


def _wait_until_blocked(sessions: sessionmaker[Session], settings: Settings, other: threading.Thread) -> None:
    """PostgreSQL: until `other` waits for a lock (or ends). SQLite: a moment (its writers queue on the file)."""
    if not settings.sqlalchemy_url.startswith("postgresql"):
        time.sleep(0.3)
        return
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
    deadline = time.monotonic() + 10
    while other.is_alive() and time.monotonic() < deadline:
        with sessions() as session:
            if session.scalar(query):
                return
        time.sleep(0.02)


def test_the_last_two_jobs_ending_at_once_complete_the_batch_exactly_once(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """Two workers' transitions overlap: the second must see the first's commit, not its old snapshot."""
    batch_id, (first, second) = submit_batch(client, "http://127.0.0.1:9/hook")
    with sessions.begin() as session:
        assert jobs.start(session, first, "gpu-1", utcnow()) and jobs.start(session, second, "gpu-2", utcnow())

    one = sessions()
    one.begin()
    assert jobs.succeed(one, first, {"text": "red"}, "m", 0.1, utcnow())
    outcome: list[bool] = []

    def finish_second() -> None:
        with sessions.begin() as two:
            outcome.append(jobs.succeed(two, second, {"text": "green"}, "m", 0.1, utcnow()))

    other = threading.Thread(target=finish_second)
    other.start()
    _wait_until_blocked(sessions, settings, other)
    assert batch_events(sessions, batch_id) == []  # the first saw the second job still running
    one.commit()
    one.close()
    other.join(30)
    assert outcome == [True]
    [event] = batch_events(sessions, batch_id)
    assert event.payload["data"]["counts"]["succeeded"] == 2
    with sessions() as session:
        assert session.get_one(Batch, batch_id).completed_at is not None


def test_the_sweeper_completes_a_batch_no_transition_completed(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
    worker_context: WorkerContext,
) -> None:
    """Jobs ended by code that predates batches (a rolling deploy) or by hand: the event is late, not lost."""
    batch_id, job_ids = submit_batch(client, "http://127.0.0.1:9/hook")
    assert run_job(worker_context, job_ids[0]) == "succeeded"
    with sessions.begin() as session:  # what an old worker does: end the job, knowing nothing of batches
        session.execute(
            update(Job).where(Job.id == job_ids[1]).values(status="failed", error_code="x", completed_at=utcnow())
        )
    assert batch_events(sessions, batch_id) == []
    broker.flushdb()

    report = sweep(settings, sessions, celery_app, broker, utcnow())
    assert report.completed_batches == 1
    [event] = batch_events(sessions, batch_id)
    assert event.payload["data"]["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "canceled": 0}
    assert event.dispatched_at is not None  # its message was sent right away
    later = utcnow() + timedelta(seconds=settings.requeue_after_s + 1)
    assert sweep(settings, sessions, celery_app, broker, later).completed_batches == 0
    assert len(batch_events(sessions, batch_id)) == 1
    assert client.get(f"/v1/batches/{batch_id}").get_json()["status"] == "completed"
