"""kill -9 of a real `vlmq worker webhooks` between send and record loses no delivery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from shared.clock import utcnow
from shared.models import WebhookAttempt, WebhookDelivery
from shared.settings import Settings
from shared.webhooks.tenant_secrets import current_secret
from tests.support.helpers import submit
from tests.support.live_service import vlmq_env, vlmq_process
from tests.support.webhook_receiver import HANG, Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",)})


@contextmanager
def webhook_worker(settings: Settings, data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`vlmq worker webhooks --beat` in its own process group, with short leases and a fast poller."""
    env = vlmq_env(
        settings,
        data_dir=str(data_dir),
        webhook_allow_hosts="127.0.0.1",
        webhook_connect_timeout_s="1",
        webhook_read_timeout_s="2",
        webhook_lease_s="4",
        webhook_poll_interval_s="0.5",
        requeue_after_s="0",
    )
    command = [sys.executable, "-m", "vlmq.cli", "worker", "webhooks", "--beat", "--concurrency", "2"]
    with log.open("ab") as out, vlmq_process(command, env, out, grace_s=30) as process:
        yield process


def wait_for_status(sessions: sessionmaker[Session], delivery_id: str, status: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sessions() as session:
            if session.get_one(WebhookDelivery, delivery_id).status == status:
                return
        time.sleep(0.2)
    raise AssertionError(f"delivery {delivery_id} never became {status}")


def test_kill_9_between_send_and_record_resends_under_the_same_id(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], png: bytes, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with Receiver() as receiver:
        receiver.expect(HANG)  # the first attempt arrives, and its answer never comes back
        submitted = submit(client, png, task="describe", webhook=receiver.url, webhook_events="completed")
        job_id = submitted.get_json()["id"]
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200

        with webhook_worker(settings, tmp_path, log) as first:
            receiver.wait_for(1, timeout_s=60)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        with sessions() as session:
            delivery = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one()
            assert session.scalars(select(WebhookAttempt)).all() == [], "the attempt was never recorded"
        assert delivery.status == "pending" and delivery.attempts == 1 and delivery.lease_until is not None
        receiver.release()

        with webhook_worker(settings, tmp_path, log):
            wait_for_status(sessions, delivery.id, "delivered")
        first_request, second_request = receiver.requests

    assert first_request.headers["webhook-id"] == second_request.headers["webhook-id"] == delivery.id
    assert first_request.body == second_request.body
    with sessions.begin() as session:
        secret = current_secret(session, settings, "default", utcnow())
    assert Webhook(secret).verify(second_request.body, second_request.headers)["data"]["id"] == job_id
    with sessions() as session:
        [attempt] = session.scalars(select(WebhookAttempt)).all()
    assert (attempt.number, attempt.status_code) == (2, 200)
