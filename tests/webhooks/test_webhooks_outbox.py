"""The outbox: rows written with the status change they report, messages sent after commit, lost ones resent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.after_commit import row_id_of_task
from shared.celery_app import DELIVER_WEBHOOK_TASK, GPU_QUEUE, WEBHOOK_QUEUE, make_celery
from shared.clock import utcnow
from shared.models import Job, Tenant, WebhookDelivery
from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.webhook_receiver import Receiver
from worker.context import WorkerContext
from worker.runner import run_job
from worker.webhooks.delivery import deliver
from worker.webhooks.due import dispatch_due

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",)})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def deliveries(sessions: sessionmaker[Session], job_id: str) -> list[WebhookDelivery]:
    with sessions() as session:
        query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.id)
        return list(session.scalars(query))


def webhook_messages(broker: redis.Redis) -> list[str]:
    """Delivery ids of the messages waiting on the webhooks queue."""
    return [row_id_of_task(json.loads(raw)["headers"]["id"]) for raw in broker.lrange(WEBHOOK_QUEUE, 0, -1)]


def test_the_outbox_row_commits_or_rolls_back_with_the_transition(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    job_id = submit(client, png, task="describe", webhook=HOOK).get_json()["id"]
    with pytest.raises(RuntimeError), sessions.begin() as session:
        assert jobs.start(session, job_id, "gpu-1", utcnow())
        assert [d.event_type for d in session.scalars(select(WebhookDelivery))] == ["job.started"]
        raise RuntimeError("the worker died before commit")
    assert deliveries(sessions, job_id) == []
    with sessions() as session:
        assert session.get_one(Job, job_id).status == "queued"

    with sessions.begin() as session:
        assert jobs.start(session, job_id, "gpu-1", utcnow())
    with sessions.begin() as session:
        assert not jobs.start(session, job_id, "gpu-2", utcnow()), "a duplicate message"
        assert jobs.succeed(session, job_id, {"text": "a red mug"}, "m", 0.5, utcnow())
        assert not jobs.cancel(session, job_id, utcnow()) and not jobs.fail(session, job_id, "x", "y", utcnow())
    started, completed = deliveries(sessions, job_id)
    assert (started.event_type, started.persistent, started.status) == ("job.started", False, "pending")
    assert (completed.event_type, completed.persistent) == ("job.completed", True)
    assert started.url == completed.url == HOOK
    assert started.payload["data"]["status"] == "running"
    assert completed.payload["data"]["status"] == "succeeded"
    assert completed.payload["data"]["result"] == {"text": "a red mug"}
    assert completed.payload["type"] == "job.completed"
    assert completed.payload["timestamp"].endswith("Z")


def test_worker_lost_failure_reports_completed(
    client: FlaskClient, sessions: sessionmaker[Session], settings: Settings, png: bytes
) -> None:
    job_id = submit(client, png, task="describe", webhook=HOOK, webhook_events="completed").get_json()["id"]
    now = utcnow()
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempts=settings.max_attempts - 1))
        assert jobs.start(session, job_id, "gpu-1", now)
    later = now + timedelta(hours=1)
    with sessions.begin() as session:
        assert jobs.fail_lost(session, job_id, jobs.stale_heartbeat(later), settings.max_attempts, later)
    [completed] = deliveries(sessions, job_id)
    assert completed.event_type == "job.completed"
    assert completed.payload["data"]["error"]["code"] == "worker_lost"


def test_tenant_default_endpoint_and_event_filter(
    client: FlaskClient, sessions: sessionmaker[Session], png: bytes
) -> None:
    silent = submit(client, png, task="describe").get_json()["id"]
    with sessions.begin() as session:
        assert jobs.cancel(session, silent, utcnow())
    assert deliveries(sessions, silent) == [], "no endpoint, no delivery"

    with sessions.begin() as session:
        session.execute(update(Tenant).where(Tenant.id == "default").values(webhook_url="https://shop.example/all"))
    by_default = submit(client, png, task="describe", webhook_events="completed").get_json()["id"]
    own = submit(client, png, task="describe", webhook=HOOK).get_json()["id"]
    for job_id in (by_default, own):
        with sessions.begin() as session:
            assert jobs.start(session, job_id, "gpu-1", utcnow())
            assert jobs.fail(session, job_id, "image_error", "unreadable", utcnow())
    assert [(d.event_type, d.url) for d in deliveries(sessions, by_default)] == [
        ("job.completed", "https://shop.example/all")
    ]
    assert [(d.event_type, d.url) for d in deliveries(sessions, own)] == [
        ("job.started", HOOK),
        ("job.completed", HOOK),
    ]


def test_cancel_through_the_api_queues_the_delivery(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    job_id = submit(client, png, task="describe", webhook=HOOK).get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    [delivery] = deliveries(sessions, job_id)
    assert delivery.dispatched_at is not None
    assert webhook_messages(broker) == [delivery.id]
    message = json.loads(broker.lindex(WEBHOOK_QUEUE, 0))
    assert message["headers"]["task"] == DELIVER_WEBHOOK_TASK


def test_gpu_runner_writes_outbox_rows_and_queues_messages_but_sends_nothing(
    client: FlaskClient, worker_context: WorkerContext, broker: redis.Redis, receiver: Receiver, png: bytes
) -> None:
    job_id = submit(client, png, task="describe", webhook=receiver.url).get_json()["id"]
    _, raw = broker.blpop([GPU_QUEUE], timeout=5)
    assert run_job(worker_context, row_id_of_task(json.loads(raw)["headers"]["id"])) == "succeeded"

    started, completed = deliveries(worker_context.sessions, job_id)
    assert (started.event_type, completed.event_type) == ("job.started", "job.completed")
    assert sorted(webhook_messages(broker)) == [started.id, completed.id]
    assert receiver.requests == [], "the GPU runner must not send HTTP"
    assert started.attempts == completed.attempts == 0

    # The webhook worker (here: this test thread) sends them.
    for delivery in (started, completed):
        assert deliver(worker_context, delivery.id, utcnow()) == "delivered"
    first, second = receiver.wait_for(2)
    # Random weights may answer with nothing but special tokens: check the result, not its text.
    assert json.loads(second.body)["data"]["result"]["usage"]["completion_tokens"] > 0
    assert {first.headers["webhook-id"], second.headers["webhook-id"]} == {started.id, completed.id}


def test_gpu_worker_processes_never_load_the_sender() -> None:
    """Build the GPU worker app as `vlmq worker gpu` does and look at what got imported."""
    code = (
        "import sys\n"
        "from shared.settings import Settings\n"
        "from worker.app import create_worker_app\n"
        "app = create_worker_app(Settings())\n"
        "import worker.runner\n"
        "assert 'vlmq.run_job' in app.tasks and 'vlmq.deliver_webhook' in app.tasks\n"
        "print(sorted(m for m in sys.modules if m.startswith('worker.webhooks')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    routes = make_celery(Settings()).conf.task_routes
    assert routes[DELIVER_WEBHOOK_TASK]["queue"] == WEBHOOK_QUEUE != GPU_QUEUE


def test_dispatch_due_resends_lost_messages_only(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    celery = make_celery(settings)
    job_id = submit(client, png, task="describe", webhook=HOOK, webhook_events="completed").get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    [delivery] = deliveries(sessions, job_id)
    now = utcnow()
    settled = now + timedelta(seconds=settings.requeue_after_s + 1)

    assert dispatch_due(settings, sessions, celery, broker, now) == 0, "just dispatched"
    assert dispatch_due(settings, sessions, celery, broker, settled) == 0, "its message still waits in the queue"
    broker.delete(WEBHOOK_QUEUE)  # Redis lost the message
    assert dispatch_due(settings, sessions, celery, broker, settled) == 1
    assert webhook_messages(broker) == [delivery.id]

    broker.delete(WEBHOOK_QUEUE)
    with sessions.begin() as session:  # a worker claimed it and died mid-send
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(lease_until=settled + timedelta(seconds=60), dispatched_at=now)
        )
    assert dispatch_due(settings, sessions, celery, broker, settled) == 0, "the lease is still live"
    assert dispatch_due(settings, sessions, celery, broker, settled + timedelta(seconds=61)) == 1

    broker.delete(WEBHOOK_QUEUE)
    with sessions.begin() as session:  # a failed attempt scheduled the next one
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(lease_until=None, dispatched_at=None, next_attempt_at=settled + timedelta(minutes=5))
        )
    assert dispatch_due(settings, sessions, celery, broker, settled) == 0, "not due yet"
    assert dispatch_due(settings, sessions, celery, broker, settled + timedelta(minutes=5)) == 1
