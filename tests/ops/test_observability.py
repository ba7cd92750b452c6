"""Issue 9: job-timing histograms, webhook and refusal counters, worker load, request ids, JSON logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.celery_app import RUN_JOB_TASK, make_celery
from shared.clock import utcnow
from shared.log_context import ContextFilter, bound
from shared.log_format import JsonFormatter
from shared.models import Job, WebhookDelivery
from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored, submit
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process
from tests.support.webhook_receiver import Answer, Receiver
from vlmq.redis_server import free_port
from worker.context import WorkerContext
from worker.runner import run_job
from worker.webhooks.delivery import deliver

RID = "shop-7f3a:req-0042"


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics` as `{(name, sorted labels): value}`."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": ("127.0.0.1",), "webhook_read_timeout_s": 2.0})


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger's lines in JSON (as `VLMQ_LOG_FORMAT=json` writes them), kept for the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_refused_request_is_counted_by_status_and_code_and_answers_with_its_id(client: FlaskClient) -> None:
    before = scrape(client)
    missing = client.get("/v1/jobs/job_nope", headers={"X-Request-ID": RID})
    assert missing.status_code == 404 and missing.headers["X-Request-ID"] == RID
    code = missing.get_json()["error"]["code"]
    generated = client.get("/v1/jobs/job_nope").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/readyz").status_code == 503  # no worker: a probe's answer, not a refusal
    after = scrape(client)
    name = "vlmq_refused_requests_total"
    assert value(after, name, status="404", code=code) == value(before, name, status="404", code=code) + 2
    assert not any(sample == name and dict(labels)["status"] == "503" for sample, labels in after)


def test_a_malformed_request_id_is_refused_and_stores_nothing(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, png: bytes
) -> None:
    for bad in ("has space", "x" * 129, "-leading-dash", 'quote"d'):
        refused = submit(client, png, task="describe", headers={"X-Request-ID": bad})
        assert refused.status_code == 400, bad
        assert refused.get_json()["error"]["code"] == "invalid_request_id"
        assert refused.headers["X-Request-ID"] != bad
    assert_nothing_stored(sessions, broker)
    samples = scrape(client)
    assert value(samples, "vlmq_refused_requests_total", status="400", code="invalid_request_id") == 4


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_run_moves_the_histograms_and_its_log_lines_carry_the_request_id(
    client: FlaskClient, worker_context: WorkerContext, png: bytes, json_log: io.StringIO
) -> None:
    created = submit(client, png, task="ocr", headers={"X-Request-ID": RID})
    assert created.status_code == 202 and created.headers["X-Request-ID"] == RID
    job_id = created.get_json()["id"]
    before = scrape(client)
    assert value(before, "vlmq_job_queue_wait_seconds_count", task="ocr") == 0
    assert run_job(worker_context, job_id) == "succeeded"

    after = scrape(client)
    for name, labels in (
        ("vlmq_job_queue_wait_seconds", {"task": "ocr"}),
        ("vlmq_job_inference_seconds", {"task": "ocr"}),
        ("vlmq_job_end_to_end_seconds", {"task": "ocr", "status": "succeeded"}),
        ("vlmq_job_tokens_per_second", {"task": "ocr"}),
    ):
        assert value(after, f"{name}_count", **labels) == 1, name
        assert value(after, f"{name}_bucket", **labels, le="+Inf") == 1, name
        assert value(after, f"{name}_sum", **labels) > 0, name
    assert value(after, "vlmq_job_inference_seconds_count", task="describe") == 0  # the other tasks start at 0

    lines = [line for line in log_lines(json_log) if line.get("job_id") == job_id]
    assert [line["message"].split()[2] for line in lines] == ["started", "succeeded"]
    assert {line["request_id"] for line in lines} == {RID}


def test_webhook_deliveries_are_counted_by_outcome_and_log_the_jobs_request_id(
    settings: Settings,
    client: FlaskClient,
    webhook_context: WorkerContext,
    receiver: Receiver,
    png: bytes,
    json_log: io.StringIO,
) -> None:
    receiver.expect(Answer(500), Answer(200))
    job_id = submit(client, png, task="describe", webhook=receiver.url, headers={"X-Request-ID": RID}).get_json()["id"]
    with webhook_context.sessions.begin() as session:
        assert jobs.cancel(session, job_id, utcnow())
    with webhook_context.sessions() as session:
        delivery = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one()
        assert session.get_one(Job, job_id).request_id == RID
    before = scrape(client)
    assert deliver(webhook_context, delivery.id, delivery.created_at) == "retrying"
    with webhook_context.sessions() as session:
        retry_at = session.get_one(WebhookDelivery, delivery.id).next_attempt_at
    assert deliver(webhook_context, delivery.id, retry_at) == "delivered"
    after = scrape(client)
    for outcome in ("retrying", "delivered"):
        name = "vlmq_webhook_deliveries_total"
        assert value(after, name, outcome=outcome) == value(before, name, outcome=outcome) + 1
    lines = [line for line in log_lines(json_log) if line["logger"] == "worker.webhooks.delivery"]
    assert len(lines) == 2 and {(line["request_id"], line["job_id"]) for line in lines} == {(RID, job_id)}


def test_json_log_lines_parse_with_ids_exceptions_and_gunicorn_access_ids() -> None:
    formatter, context = JsonFormatter(), ContextFilter()

    def render(record: logging.LogRecord) -> dict:
        context.filter(record)
        return json.loads(formatter.format(record))

    with bound(RID, "job_1"):
        try:
            raise ValueError('bad "quote"\nand a newline')
        except ValueError:
            record = logging.LogRecord("worker.runner", logging.ERROR, __file__, 1, "job %s: %s", ("job_1", "ü"), None)
            record.exc_info = sys.exc_info()
            line = render(record)
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "worker.runner", "job job_1: ü")
    assert (line["request_id"], line["job_id"]) == (RID, "job_1")
    assert "ValueError" in line["exception"]
    outside = render(logging.LogRecord("web", logging.INFO, __file__, 1, "no ids", None, None))
    assert "request_id" not in outside and "job_id" not in outside
    access = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(h)s", ({"h": "1", "{x-request-id}o": RID},), None
    )
    assert render(access)["request_id"] == RID


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_submission_publishes_celerys_task_sent_event_for_flower(
    settings: Settings, client: FlaskClient, broker: redis.Redis, png: bytes
) -> None:
    assert make_celery(settings).conf.worker_send_task_events  # the workers' events (received, started, ...)
    events = broker.pubsub()
    events.psubscribe("*celeryev*")
    assert events.get_message(timeout=1)["type"] == "psubscribe"
    submit(client, png, task="describe")
    deadline, sent = time.monotonic() + 5, []
    while time.monotonic() < deadline and not sent:
        if (message := events.get_message(timeout=0.5)) is not None:
            event = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
            sent += [event] if event["type"] == "task-sent" else []
    events.close()
    assert sent and sent[0]["name"] == RUN_JOB_TASK


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_gpu_worker_reports_its_load_and_logs_the_jobs_request_id_in_json(
    settings: Settings, client: FlaskClient, png: bytes, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    env = vlmq_env(settings, max_new_tokens="8", log_format="json")
    with log_path.open("w") as log, vlmq_process([VLMQ, "worker", "gpu"], env, log):
        job_id = submit(client, png, task="describe", headers={"X-Request-ID": RID}).get_json()["id"]
        deadline = time.monotonic() + 180
        while (status := client.get(f"/v1/jobs/{job_id}").get_json()["status"]) != "succeeded":
            assert status in ("queued", "running") and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        samples = scrape(client)
    assert value(samples, "vlmq_job_end_to_end_seconds_count", task="describe", status="succeeded") == 1
    assert value(samples, "vlmq_job_queue_wait_seconds_bucket", task="describe", le="+Inf") == 1
    slots = {labels: v for (name, labels), v in samples.items() if name == "vlmq_worker_slots"}
    assert len(slots) == 1 and next(iter(slots.values())) >= 1
    (labels,) = slots
    assert (("vlmq_worker_rows_running", labels)) in samples  # the CPU worker batches too; no GPU memory here
    assert not any(name.startswith("vlmq_worker_gpu_memory") for name, _ in samples)

    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert any(line["logger"] == "worker.gpu_worker" for line in parsed)
    job_lines = [line for line in parsed if line.get("job_id") == job_id]
    assert job_lines and {line["request_id"] for line in job_lines} == {RID}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gunicorns_access_and_error_lines_are_json_with_the_request_id(settings: Settings) -> None:
    port = free_port()
    command = [sys.executable, "-m", "vlmq.cli", "web", "--port", str(port), "--workers", "1"]
    with vlmq_process(command, vlmq_env(settings, log_format="json"), subprocess.PIPE) as server:
        for _ in range(300):
            try:
                response = requests.get(f"http://127.0.0.1:{port}/v1/jobs/job_nope", headers={"X-Request-ID": RID})
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert response.status_code == 404 and response.headers["X-Request-ID"] == RID
    output = server.stdout.read().decode()  # type: ignore[union-attr]
    lines = [json.loads(line) for line in output.splitlines()]  # every line parses
    assert any(line["logger"] == "gunicorn.error" for line in lines), output
    (access,) = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert "GET /v1/jobs/job_nope" in access["message"] and access["request_id"] == RID
