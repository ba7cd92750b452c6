"""The delivery log (`GET /v1/jobs/{id}/deliveries`), redelivery, and the job page's section."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from flask.testing import FlaskClient

from shared.celery_app import WEBHOOK_QUEUE
from shared.clock import utcnow
from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.webhook_receiver import Answer, Receiver
from worker.context import WorkerContext
from worker.webhooks.delivery import deliver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",), "webhook_retry_base_s": 60.0})


def test_delivery_log_redeliver_and_job_page(
    client: FlaskClient, webhook_context: WorkerContext, broker: redis.Redis, receiver: Receiver, png: bytes
) -> None:
    receiver.expect(Answer(500, body=b"database is down"))
    job_id = submit(client, png, task="describe", webhook=receiver.url, webhook_events="completed").get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    [delivery] = client.get(f"/v1/jobs/{job_id}/deliveries").get_json()["data"]
    assert (delivery["event"], delivery["status"], delivery["attempts"], delivery["log"]) == (
        "job.completed",
        "pending",
        0,
        [],
    )

    now = utcnow()
    assert deliver(webhook_context, delivery["id"], now) == "retrying"
    [delivery] = client.get(f"/v1/jobs/{job_id}/deliveries").get_json()["data"]
    assert delivery["attempts"] == 1 and delivery["last_status_code"] == 500
    assert delivery["next_attempt_at"] is not None
    assert delivery["log"][0]["status_code"] == 500 and delivery["log"][0]["response"] == "database is down"

    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Webhook deliveries" in page and delivery["id"] in page and "HTTP 500" in page

    retry_at = now + timedelta(seconds=60)
    assert deliver(webhook_context, delivery["id"], retry_at) == "delivered"
    broker.delete(WEBHOOK_QUEUE)
    redelivered = client.post(f"/v1/jobs/{job_id}/deliveries/redeliver")
    assert redelivered.status_code == 202
    assert redelivered.get_json()["id"] == delivery["id"]
    assert redelivered.get_json()["status"] == "pending"
    assert json.loads(broker.lindex(WEBHOOK_QUEUE, 0))["headers"]["id"].startswith(delivery["id"] + "-")
    assert deliver(webhook_context, delivery["id"], utcnow() + timedelta(seconds=61)) == "delivered"
    requests = receiver.wait_for(3)
    assert [r.headers["webhook-id"] for r in requests] == [delivery["id"]] * 3
    [delivery] = client.get(f"/v1/jobs/{job_id}/deliveries").get_json()["data"]
    assert [entry["status_code"] for entry in delivery["log"]] == [500, 200, 200]


def test_redeliver_errors(client: FlaskClient, png: bytes) -> None:
    plain = submit(client, png, task="describe").get_json()["id"]
    none = client.post(f"/v1/jobs/{plain}/deliveries/redeliver")
    assert none.status_code == 409 and none.get_json()["error"]["code"] == "no_deliveries"
    unknown = client.post(f"/v1/jobs/{plain}/deliveries/redeliver", json={"delivery_id": "msg_nope"})
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "delivery_not_found"
    bad = client.post(f"/v1/jobs/{plain}/deliveries/redeliver", json={"delivery_id": 7})
    assert bad.status_code == 400
    assert client.get("/v1/jobs/job_nope/deliveries").status_code == 404
    assert client.get(f"/v1/jobs/{plain}/deliveries").get_json() == {"data": []}
