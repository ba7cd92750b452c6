"""Cancelling a big batch is one short transaction, with the same job states and webhook rows as
cancelling its jobs one by one."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.cancel_channel import CHANNEL
from shared.celery_app import WEBHOOK_QUEUE
from shared.clock import utcnow
from shared.job_view import job_to_dict
from shared.models import Job, WebhookDelivery
from shared.settings import Settings
from shared.webhooks.enqueue import enqueue_job_deliveries
from tests.support.helpers import data_uri, image_bytes

ITEMS = 500
HOOK = "http://127.0.0.1:9/hook"
# What a cancel may cost whatever the batch's size: loading the batch, the transaction, the webhook
# messages' bookkeeping and the answer's counts.
MAX_STATEMENTS = 30


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_batch_items": ITEMS, "webhook_allow_hosts": ("127.0.0.1",)})


def _big_batch(client: FlaskClient) -> tuple[str, list[str]]:
    body = {"task": "describe", "webhook": HOOK, "items": [{"image": data_uri(image_bytes())}] * ITEMS}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 202, response.get_json()
    batch_id = response.get_json()["id"]
    lines = client.get(f"/v1/batches/{batch_id}/results").get_data(as_text=True).splitlines()
    return batch_id, [json.loads(line)["job_id"] for line in lines]


def _counting_statements(app: Flask) -> list[str]:
    statements: list[str] = []
    engine = app.extensions["vlmq"].engine

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    return statements


def test_cancelling_a_big_batch_is_a_few_statements_with_every_webhook_row(
    app: Flask, client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, celery_app: Celery
) -> None:
    batch_id, job_ids = _big_batch(client)
    running, finished = job_ids[0], job_ids[1]
    with sessions.begin() as session:
        for job_id in (running, finished):
            assert jobs.start(session, job_id, "worker-1", utcnow())
        assert jobs.succeed(session, finished, {"text": "a shoe"}, "m", 1.0, utcnow())
    for job_id in (running, finished):  # as the worker does after its transitions
        enqueue_job_deliveries(celery_app, sessions, job_id)
    broker.delete(WEBHOOK_QUEUE)

    workers = broker.pubsub(ignore_subscribe_messages=True)  # where GPU workers hear pushed cancels
    workers.subscribe(CHANNEL)
    statements = _counting_statements(app)
    started = time.monotonic()
    response = client.post(f"/v1/batches/{batch_id}/cancel")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_json()
    batch = response.get_json()
    assert batch["status"] == "canceled" and batch["canceled_at"] and batch["completed_at"]
    assert batch["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "canceled": ITEMS - 1}
    assert len(statements) <= MAX_STATEMENTS, (len(statements), elapsed)
    pushed = [workers.get_message(timeout=1.0) for _ in range(2)]  # the first wait may read the subscribe reply
    messages = [message["data"].decode().split() for message in pushed if message is not None]
    workers.close()
    assert len(messages) == 1 and sorted(messages[0]) == sorted(set(job_ids) - {finished})  # one message, 499 ids

    with sessions() as session:
        canceled = {job.id: job for job in session.scalars(select(Job).where(Job.status == "canceled"))}
        completed_rows = session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.event_type == "job.completed", WebhookDelivery.job_id != finished
            )
        ).all()
        batch_rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id)).all()
    assert set(canceled) == set(job_ids) - {finished}
    assert all(job.completed_at is not None for job in canceled.values())
    # One `job.completed` row per canceled job, its body the job as it now is: what `jobs.cancel` writes.
    assert sorted(row.job_id for row in completed_rows) == sorted(canceled)
    for row in completed_rows:
        assert row.payload["data"] == job_to_dict(canceled[row.job_id], "")
        assert (row.status, row.persistent, row.url) == ("pending", True, HOOK)
    assert [(row.event_type, row.payload["data"]["status"]) for row in batch_rows] == [("batch.completed", "canceled")]
    # Every new row's message was sent, and recorded as sent.
    assert all(row.dispatched_at is not None for row in [*completed_rows, *batch_rows])
    assert broker.llen(WEBHOOK_QUEUE) == len(completed_rows) + len(batch_rows)

    again = client.post(f"/v1/batches/{batch_id}/cancel")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "batch_already_finished")
