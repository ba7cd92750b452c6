"""Health checks, and what happens to submissions while the broker is down."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from celery import Celery
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import GPU_QUEUE
from shared.clock import utcnow
from shared.down_reports import GPU_WORKER, report_down
from shared.models import Job
from shared.presence import announce
from shared.settings import Settings
from tests.support.helpers import submit
from vlmq.redis_server import free_port
from web.app import create_app
from worker.sweeper import sweep


def test_healthz_answers(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_waits_for_a_gpu_worker(client: FlaskClient, broker: redis.Redis) -> None:
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    checks = not_ready.get_json()["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]
    assert checks["gpu_workers"] == {"ok": False, "count": 0, "models": []}
    announce(broker, "host:1", {"queues": [GPU_QUEUE], "model": "m"}, ttl_s=30)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["gpu_workers"]["models"] == ["m"]


def test_readyz_says_why_the_gpu_worker_is_down_while_none_is_alive(client: FlaskClient, broker: redis.Redis) -> None:
    report_down(broker, GPU_WORKER, "exited with code -9 at 12:00:00 (3 in a row); vlmq up starts it again in 4 s")
    checks = client.get("/readyz").get_json()["checks"]
    assert checks["gpu_workers"]["ok"] is False
    assert checks["gpu_workers"]["error"].startswith("exited with code -9")
    announce(broker, "host:1", {"queues": [GPU_QUEUE], "model": "m"}, ttl_s=30)
    assert "error" not in client.get("/readyz").get_json()["checks"]["gpu_workers"], "one is alive again"


def test_readyz_reports_a_dead_broker(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["broker"]["ok"] is False
    app.extensions["vlmq"].engine.dispose()


def test_job_accepted_while_broker_is_down_is_sent_by_the_sweeper(
    settings: Settings, sessions: sessionmaker[Session], celery_app: Celery, broker: redis.Redis, png: bytes
) -> None:
    dead_broker = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(dead_broker)
    started = time.monotonic()
    response = submit(app.test_client(), png, task="describe")
    assert response.status_code == 202
    assert time.monotonic() - started < 15  # fails fast instead of hanging the request
    job_id = response.get_json()["id"]
    with sessions() as session:
        assert session.get(Job, job_id).enqueued_at is None
    later = utcnow() + timedelta(seconds=settings.requeue_after_s + 1)
    assert sweep(settings, sessions, celery_app, broker, later).resent == 1
    assert broker.llen(GPU_QUEUE) == 1
    app.extensions["vlmq"].engine.dispose()


def test_metrics_count_jobs_queue_and_workers(client: FlaskClient, broker: redis.Redis, png: bytes) -> None:
    for _ in range(2):
        submit(client, png, task="describe")
    canceled = submit(client, png, task="ocr").get_json()["id"]
    client.post(f"/v1/jobs/{canceled}/cancel")
    announce(broker, "host:7", {"queues": [GPU_QUEUE]}, ttl_s=30)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    lines = set(response.get_data(as_text=True).splitlines())
    assert 'vlmq_jobs{status="queued"} 2.0' in lines
    assert 'vlmq_jobs{status="canceled"} 1.0' in lines
    assert 'vlmq_jobs{status="succeeded"} 0.0' in lines
    assert 'vlmq_broker_queue_length{queue="gpu"} 3.0' in lines
    assert 'vlmq_live_workers{queue="gpu"} 1.0' in lines
    assert "vlmq_inference_seconds_total 0.0" in lines
