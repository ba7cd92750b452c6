"""Links in webhook bodies follow the one base-URL rule of API links (`shared/public_url.py`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from shared import jobs
from shared.clock import utcnow
from shared.models import WebhookDelivery
from shared.public_url import DEFAULT_BASE_URL, base_url
from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.webhook_receiver import Receiver
from vlmq.up import child_environment
from worker.context import WorkerContext
from worker.webhooks.delivery import deliver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",)})


def test_webhook_links_point_at_the_port_vlmq_up_serves(
    client: FlaskClient,
    webhook_context: WorkerContext,
    receiver: Receiver,
    png: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`vlmq up --port 8123` without `VLMQ_PUBLIC_URL`: the light worker it starts links to port 8123."""
    monkeypatch.delenv("VLMQ_PUBLIC_URL", raising=False)
    for name, value in child_environment(tmp_path, "0.0.0.0", 8123).items():
        if name.startswith("VLMQ_"):
            monkeypatch.setenv(name, value)
    served_url = Settings().served_url  # what the light worker reads from the environment `up` gave it
    settings = webhook_context.settings.model_copy(update={"served_url": served_url})
    light_worker = dataclasses.replace(webhook_context, settings=settings)
    job_id = submit(client, png, task="describe", webhook=receiver.url).get_json()["id"]
    with light_worker.sessions.begin() as session:
        assert jobs.cancel(session, job_id, utcnow())
    with light_worker.sessions() as session:
        delivery = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one()

    assert deliver(light_worker, delivery.id, delivery.created_at) == "delivered"
    body = json.loads(receiver.wait_for(1)[0].body)
    assert body["data"]["urls"]["self"] == f"http://127.0.0.1:8123/v1/jobs/{job_id}"


def test_public_url_wins_then_the_request_then_what_up_serves(settings: Settings) -> None:
    served = settings.model_copy(update={"public_url": None, "served_url": "http://10.0.0.5:9000"})
    assert base_url(served.model_copy(update={"public_url": "https://vlmq.example.com/"})) == "https://vlmq.example.com"
    assert base_url(served, "http://shop.local:8000/") == "http://shop.local:8000"
    assert base_url(served) == "http://10.0.0.5:9000"
    assert base_url(served.model_copy(update={"served_url": None})) == DEFAULT_BASE_URL
