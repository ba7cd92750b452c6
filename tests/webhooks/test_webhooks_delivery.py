"""Webhook attempts against a real HTTP receiver on loopback, with an injected clock."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from shared import jobs, ssrf
from shared.auth import create_api_key
from shared.celery_app import WEBHOOK_QUEUE
from shared.clock import utcnow
from shared.models import WebhookAttempt, WebhookDelivery
from shared.schemas import JobCreate
from shared.settings import Settings
from shared.webhooks.tenant_secrets import current_secret
from tests.support.helpers import submit
from tests.support.webhook_receiver import HANG, HUGE, RESET, TRICKLE, Answer, Receiver
from web.api.job_records import insert_job
from worker.context import WorkerContext
from worker.webhooks import endpoint_health, endpoint_slots
from worker.webhooks.delivery import deliver
from worker.webhooks.http_post import MAX_EXCERPT_BYTES

BASE_S = 10.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allow_hosts": ("127.0.0.1",),
            "webhook_connect_timeout_s": 1.0,
            "webhook_read_timeout_s": 0.5,
            "webhook_lease_s": 30.0,
            "webhook_retry_base_s": BASE_S,
            "webhook_retry_max_delay_s": 3600.0,
            "public_url": "https://vlmq.example.com",
        }
    )


def finished_job_delivery(client: FlaskClient, sessions: sessionmaker[Session], png: bytes, url: str, **fields: str):
    """Submit a job reporting to `url`, cancel it, and return its job.completed delivery."""
    job_id = submit(client, png, task="describe", webhook=url, **fields).get_json()["id"]
    with sessions.begin() as session:
        assert jobs.cancel(session, job_id, utcnow())
    with sessions() as session:
        return session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one()


def load(sessions: sessionmaker[Session], delivery_id: str) -> WebhookDelivery:
    with sessions() as session:
        return session.get_one(WebhookDelivery, delivery_id)


def attempts(sessions: sessionmaker[Session], delivery_id: str) -> list[WebhookAttempt]:
    with sessions() as session:
        query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.number)
        return list(session.scalars(query))


def secret(webhook_context: WorkerContext) -> str:
    with webhook_context.sessions.begin() as session:
        return current_secret(session, webhook_context.settings, "default", utcnow())


def test_retries_follow_the_backoff_schedule_under_one_webhook_id(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    receiver.expect(Answer(500), Answer(502, body=b"bad gateway"), Answer(500))
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    now = delivery.created_at
    schedule: list[datetime] = []
    for attempt in (1, 2, 3):
        assert deliver(webhook_context, delivery.id, now - timedelta(seconds=1)) == "not_due"
        assert deliver(webhook_context, delivery.id, now) == "retrying"
        row = load(webhook_context.sessions, delivery.id)
        ceiling = BASE_S * 2 ** (attempt - 1)
        assert now + timedelta(seconds=ceiling / 2) <= row.next_attempt_at <= now + timedelta(seconds=ceiling)
        schedule.append(row.next_attempt_at)
        now = row.next_attempt_at
    assert deliver(webhook_context, delivery.id, now) == "delivered"

    requests = receiver.wait_for(4)
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {delivery.id}
    assert len({r.body for r in requests}) == 1, "every retry sends the same bytes"
    webhook = Webhook(secret(webhook_context))
    for request in requests:
        payload = webhook.verify(request.body, request.headers)
        assert payload["type"] == "job.completed"
        assert payload["data"]["id"] == delivery.job_id
        assert payload["data"]["status"] == "canceled"
        assert payload["data"]["urls"]["self"] == f"https://vlmq.example.com/v1/jobs/{delivery.job_id}"
    assert requests[0].path == "/hooks/vlmq?shop=1"
    assert requests[0].headers["Content-Type"] == "application/json"

    row = load(webhook_context.sessions, delivery.id)
    assert row.status == "delivered" and row.attempts == 4 and row.next_attempt_at is None
    log = attempts(webhook_context.sessions, delivery.id)
    assert [a.status_code for a in log] == [500, 502, 500, 200]
    assert log[1].response_excerpt == "bad gateway"
    assert [a.attempted_at for a in log[1:]] == schedule


def test_retry_after_on_429_sets_the_next_attempt(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    receiver.expect(Answer(429, {"Retry-After": "120"}), Answer(503, {"Retry-After": "7"}))
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    now = delivery.created_at
    assert deliver(webhook_context, delivery.id, now) == "retrying"
    assert load(webhook_context.sessions, delivery.id).next_attempt_at == now + timedelta(seconds=120)
    now += timedelta(seconds=120)
    assert deliver(webhook_context, delivery.id, now) == "retrying"
    assert load(webhook_context.sessions, delivery.id).next_attempt_at == now + timedelta(seconds=7)
    assert [a.status_code for a in attempts(webhook_context.sessions, delivery.id)] == [429, 503]


def test_410_gone_stops_retrying(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    receiver.expect(Answer(410))
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "failed"
    row = load(webhook_context.sessions, delivery.id)
    assert row.status == "failed" and row.next_attempt_at is None
    assert "410" in row.last_error
    assert deliver(webhook_context, delivery.id, delivery.created_at + timedelta(hours=1)) == "done"
    assert len(receiver.requests) == 1


def test_gives_up_when_the_retry_window_ends(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    receiver.default = Answer(500)
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    window_end = delivery.created_at + timedelta(seconds=webhook_context.settings.webhook_retry_window_s)
    assert deliver(webhook_context, delivery.id, window_end - timedelta(seconds=1)) == "failed"
    row = load(webhook_context.sessions, delivery.id)
    assert "the retry window ended" in row.last_error
    assert row.last_status_code == 500


def test_hanging_resetting_and_huge_receivers_do_not_stall_the_sender(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    receiver.expect(HANG, RESET, HUGE)
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    now = delivery.created_at
    for _ in range(2):
        assert deliver(webhook_context, delivery.id, now) == "retrying"
        now = load(webhook_context.sessions, delivery.id).next_attempt_at
    assert deliver(webhook_context, delivery.id, now) == "delivered"
    hung, reset, huge = attempts(webhook_context.sessions, delivery.id)
    assert hung.status_code is None and hung.error.startswith("timed out")
    assert reset.status_code is None and "reset" in reset.error.lower()
    assert huge.status_code == 200 and len(huge.response_excerpt) == MAX_EXCERPT_BYTES
    assert receiver.huge_bytes_sent < 64 * 1024 * 1024, "the sender hung up instead of reading the whole body"


def test_progress_events_are_sent_once(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    receiver.expect(Answer(500))
    job_id = submit(client, png, task="describe", webhook=receiver.url, webhook_events="started").get_json()["id"]
    with webhook_context.sessions.begin() as session:
        assert jobs.start(session, job_id, "gpu-1", utcnow())
    with webhook_context.sessions() as session:
        delivery = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one()
    assert delivery.event_type == "job.started" and not delivery.persistent
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "failed"
    assert "sent once" in load(webhook_context.sessions, delivery.id).last_error
    assert len(receiver.requests) == 1
    body = json.loads(receiver.requests[0].body)
    assert body["type"] == "job.started" and body["data"]["status"] == "running"


def test_send_time_check_blocks_dns_rebinding(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolved to a public address at submit time and to loopback at send time."""
    answers = {"hooks.shop.example": ["93.184.216.34"]}
    monkeypatch.setattr(ssrf, "resolve", lambda host, port: answers[host])
    delivery = finished_job_delivery(
        client, webhook_context.sessions, png, f"http://hooks.shop.example:{receiver.port}/hook"
    )
    answers["hooks.shop.example"] = ["127.0.0.1"]
    webhook_context.settings = webhook_context.settings.model_copy(update={"webhook_allow_hosts": ()})
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "retrying"
    row = load(webhook_context.sessions, delivery.id)
    assert row.last_error.startswith("refused: ") and "loopback" in row.last_error
    assert receiver.requests == []


def test_connects_to_the_checked_address_with_the_original_host(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No real DNS knows `hooks.shop.example`: the request can only arrive if the sender used the checked IP."""
    monkeypatch.setattr(ssrf, "resolve", lambda host, port: ["127.0.0.1"])
    delivery = finished_job_delivery(
        client, webhook_context.sessions, png, f"http://hooks.shop.example:{receiver.port}/hook"
    )
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "delivered"
    assert receiver.requests[0].headers["Host"] == f"hooks.shop.example:{receiver.port}"


def test_a_full_endpoint_parks_the_delivery_until_a_slot_is_released(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes, broker: redis.Redis
) -> None:
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    key = endpoint_slots.endpoint_key(delivery.url)
    now = delivery.created_at.timestamp()
    for token in range(webhook_context.settings.webhook_max_per_endpoint):
        assert endpoint_slots.acquire(
            broker, key, f"other-{token}", webhook_context.settings.webhook_max_per_endpoint, now, 30
        )
    broker.delete(WEBHOOK_QUEUE)
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "busy"
    assert receiver.requests == []
    assert broker.llen(WEBHOOK_QUEUE) == 0, "parked, not polling"
    # A release names the parked delivery whose turn it is; the releasing attempt sends its message.
    assert endpoint_slots.release(broker, key, "other-0") == delivery.id
    assert endpoint_slots.release(broker, key, "other-1") is None
    for token in range(2):
        assert endpoint_slots.acquire(broker, key, f"other-{token}", 4, now, 30)
    # A crashed holder's slot runs out with its lease: 31 s later the endpoint is free again.
    later = delivery.created_at + timedelta(seconds=31)
    assert deliver(webhook_context, delivery.id, later) == "delivered"


def test_endpoint_slots_expire_and_release(broker: redis.Redis) -> None:
    key = endpoint_slots.endpoint_key("https://Shop.example/hooks")
    assert key == endpoint_slots.endpoint_key("https://shop.example:443/other")
    assert endpoint_slots.acquire(broker, key, "a", 2, 1000.0, 60)
    assert endpoint_slots.acquire(broker, key, "b", 2, 1000.0, 60)
    assert not endpoint_slots.acquire(broker, key, "c", 2, 1030.0, 60)
    endpoint_slots.release(broker, key, "a")
    assert endpoint_slots.acquire(broker, key, "c", 2, 1030.0, 60)
    assert not endpoint_slots.acquire(broker, key, "d", 2, 1059.0, 60)
    assert endpoint_slots.acquire(broker, key, "d", 2, 1061.0, 60), "b's slot expired with its lease"
    assert broker.ttl(key) > 0


def test_a_receiver_trickling_its_headers_is_cut_at_the_attempt_deadline(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    """Every byte comes within the read timeout; only the whole-attempt deadline (1 + 0.5 s) stops it."""
    receiver.expect(TRICKLE)
    delivery = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "retrying"
    (attempt,) = attempts(webhook_context.sessions, delivery.id)
    assert attempt.status_code is None
    assert attempt.error.startswith("timed out") and "within 1.5 s" in attempt.error


def tenant_delivery(sessions: sessionmaker[Session], settings: Settings, png: bytes, tenant: str, url: str) -> str:
    """A finished job of another tenant reporting to `url`; returns its delivery id."""
    with sessions.begin() as session:
        create_api_key(session, tenant)
        job = insert_job(session, settings, tenant, JobCreate(task="describe", webhook=url), png)
        assert jobs.cancel(session, job.id, utcnow())
        return session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.job_id == job.id)).one()


def test_one_tenants_slow_endpoint_cannot_take_the_threads_of_others(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes
) -> None:
    webhook_context.settings = webhook_context.settings.model_copy(update={"webhook_max_per_tenant": 1})
    receiver.expect(TRICKLE)
    slow = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    outcomes: list[str] = []
    sender = threading.Thread(target=lambda: outcomes.append(deliver(webhook_context, slow.id, slow.created_at)))
    sender.start()
    receiver.wait_for(1)
    with Receiver() as other_endpoint, Receiver() as other_tenant:
        # The same tenant's second endpoint waits for the tenant's slot...
        second = finished_job_delivery(client, webhook_context.sessions, png, other_endpoint.url)
        assert deliver(webhook_context, second.id, second.created_at) == "busy"
        assert other_endpoint.requests == []
        # ...while another tenant is served at once.
        other = tenant_delivery(webhook_context.sessions, webhook_context.settings, png, "shop-b", other_tenant.url)
        assert deliver(webhook_context, other, utcnow()) == "delivered"
        assert len(other_tenant.requests) == 1
    sender.join()
    assert outcomes == ["retrying"]


def test_a_finished_attempt_sends_the_parked_delivery_s_message(
    client: FlaskClient, webhook_context: WorkerContext, receiver: Receiver, png: bytes, broker: redis.Redis
) -> None:
    webhook_context.settings = webhook_context.settings.model_copy(update={"webhook_max_per_endpoint": 1})
    receiver.expect(TRICKLE)
    slow = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    parked = finished_job_delivery(client, webhook_context.sessions, png, receiver.url)
    sender = threading.Thread(target=deliver, args=(webhook_context, slow.id, slow.created_at))
    sender.start()
    receiver.wait_for(1)
    broker.delete(WEBHOOK_QUEUE)
    assert deliver(webhook_context, parked.id, parked.created_at) == "busy"
    assert broker.llen(WEBHOOK_QUEUE) == 0
    sender.join()
    (message,) = [json.loads(raw) for raw in broker.lrange(WEBHOOK_QUEUE, 0, -1)]
    assert message["headers"]["id"].startswith(parked.id + "-") and message["headers"]["eta"] is None
    # The trickling endpoint now counts as failing (its next attempt takes the tenant's failing pool)
    # until an attempt succeeds.
    endpoint = endpoint_slots.endpoint_key(receiver.url)
    assert endpoint_health.is_failing(broker, endpoint)
    assert deliver(webhook_context, parked.id, utcnow()) == "delivered"
    assert not endpoint_health.is_failing(broker, endpoint)
