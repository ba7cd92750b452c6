"""A tenant's hanging webhook endpoints do not hold up its healthy one, against a real `vlmq worker webhooks`.

Six endpoints of one tenant hang until the read timeout on every attempt and are
retried quickly; meanwhile the same tenant's healthy endpoint gets a job every
0.25 s. Its deliveries must arrive within 5 s of the job's end, and the deliveries
that found no free slot must be parked, not polled: few task runs per attempt.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import DELIVER_WEBHOOK_TASK
from shared.models import WebhookAttempt, WebhookDelivery
from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.live_service import vlmq_env, vlmq_process
from tests.support.webhook_receiver import HANG, Receiver

BAD_ENDPOINTS = 6
JOBS_PER_BAD_ENDPOINT = 4
HEALTHY_JOBS = 24


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",)})


@contextmanager
def webhook_worker(settings: Settings, data_dir: Path, log: Path) -> Iterator[None]:
    """`vlmq worker webhooks --beat` with its default threads, a 2 s read timeout and quick retries."""
    env = vlmq_env(
        settings,
        data_dir=str(data_dir),
        webhook_allow_hosts="127.0.0.1",
        webhook_connect_timeout_s="1",
        webhook_read_timeout_s="2",
        webhook_lease_s="4",
        webhook_retry_base_s="0.5",
        webhook_retry_max_delay_s="1",
        webhook_poll_interval_s="0.5",
    )
    command = [sys.executable, "-m", "vlmq.cli", "worker", "webhooks", "--beat"]
    with log.open("ab") as out, vlmq_process(command, env, out, grace_s=30):
        yield


def ended_job(client: FlaskClient, png: bytes, url: str) -> str:
    """A job reporting to `url`, canceled at once: its `job.completed` delivery is due now."""
    job_id = submit(client, png, task="describe", webhook=url, webhook_events="completed").get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    return job_id


def latencies_s(sessions: sessionmaker[Session], url: str) -> list[float]:
    """From each delivery's creation (the job's end) to its delivery, for the deliveries to `url`."""
    with sessions() as session:
        rows = session.execute(
            select(WebhookDelivery.created_at, WebhookDelivery.delivered_at).where(WebhookDelivery.url == url)
        ).all()
    assert all(delivered is not None for _, delivered in rows), "a healthy delivery was not delivered"
    return sorted((delivered - created).total_seconds() for created, delivered in rows)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # ~2 minutes of real time: one database
def test_a_tenants_hanging_endpoints_do_not_hold_up_its_healthy_one(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], png: bytes, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with ExitStack() as stack:
        bad = [stack.enter_context(Receiver(default=HANG)) for _ in range(BAD_ENDPOINTS)]
        healthy = stack.enter_context(Receiver())
        stack.enter_context(webhook_worker(settings, tmp_path, log))
        for receiver in bad:
            for _ in range(JOBS_PER_BAD_ENDPOINT):
                ended_job(client, png, receiver.url)
        for receiver in bad:  # every bad endpoint has failed once: this is how the tenant runs now
            receiver.wait_for(1, timeout_s=60)
        for _ in range(HEALTHY_JOBS):
            ended_job(client, png, healthy.url)
            time.sleep(0.25)
        healthy.wait_for(HEALTHY_JOBS, timeout_s=60)
        time.sleep(1)  # the last records are written after the answer
        attempts = sum(len(receiver.requests) for receiver in [*bad, healthy])
    waits = latencies_s(sessions, healthy.url)
    p99 = waits[min(len(waits) - 1, round(0.99 * len(waits)))]
    assert p99 < 5.0, f"healthy endpoint waited p50 {waits[len(waits) // 2]:.2f} s, p99 {p99:.2f} s"
    runs = sum(
        f"Task {DELIVER_WEBHOOK_TASK}[" in line and "succeeded in" in line for line in log.read_text().splitlines()
    )
    with sessions() as session:
        recorded = session.scalar(select(func.count()).select_from(WebhookAttempt))
    assert recorded and attempts >= recorded
    assert 0 < runs <= 3 * attempts, f"{runs} task runs for {attempts} attempts"
    print(f"healthy p50 {waits[len(waits) // 2]:.2f} s, p99 {p99:.2f} s; {runs} task runs, {attempts} attempts")
