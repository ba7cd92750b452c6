"""A database outage (PostgreSQL stopped, then started again): submits get 503 with `Retry-After`,
a job that finishes during the outage keeps its result, and one claimed as it starts goes back to the queue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from shared.celery_app import make_celery
from shared.db import make_engine, make_session_factory
from shared.migrate import upgrade_to_head
from shared.models import Job, WebhookDelivery
from shared.settings import Settings
from tests.support.helpers import job_count, queued_messages, submit
from tests.support.services import PostgresCluster, postgres_cluster
from web.app import create_app
from worker import runner
from worker.context import WorkerContext, worker_name
from worker.inference.engine_contract import Engine, InferenceRequest, InferenceResult
from worker.runner import run_job

OUTAGE_S = 2.0


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A cluster of this test's own: stopping the shared one would break the tests around it."""
    with postgres_cluster() as own:
        yield own


@pytest.fixture
def outage_settings(cluster: PostgresCluster, redis_url: str, model_data_dir: Path) -> Settings:
    redis.Redis.from_url(redis_url).flushdb()
    upgrade_to_head(cluster.url)
    return Settings(
        data_dir=model_data_dir,
        database_url=cluster.url,
        redis_url=redis_url,
        heartbeat_interval_s=0.2,
        max_new_tokens=8,
        rate_limit="1000/second",
        webhook_allow_hosts=("127.0.0.1",),
    )


def test_submit_during_an_outage_is_503_with_retry_after_and_stores_nothing(
    cluster: PostgresCluster, outage_settings: Settings, png: bytes
) -> None:
    app = create_app(outage_settings)
    client = app.test_client()
    assert submit(client, png, task="describe").status_code == 202
    cluster.stop()
    try:
        refused = submit(client, png, task="describe")
        listed = client.get("/v1/jobs")
    finally:
        cluster.start()
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == "5"
    assert refused.get_json()["error"]["code"] == "database_unavailable"
    assert "retry in 5 s" in refused.get_json()["error"]["message"], "the header and the body agree"
    assert listed.status_code == 503 and listed.get_json()["error"]["code"] == "database_unavailable"
    assert submit(client, png, task="describe").status_code == 202  # the pool reconnects once the database is back
    assert job_count(app.extensions["vlmq"].sessions) == 2
    app.extensions["vlmq"].engine.dispose()


class _OutageAtTheEnd:
    """The real engine; the database goes down as it finishes and comes back `OUTAGE_S` later."""

    def __init__(self, engine: Engine, cluster: PostgresCluster) -> None:
        self._engine = engine
        self._cluster = cluster
        self.runs = 0
        self.restart: threading.Timer | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def run(self, request: InferenceRequest, **callbacks: Any) -> InferenceResult:
        self.runs += 1
        result = self._engine.run(request, **callbacks)
        self._cluster.stop()
        self.restart = threading.Timer(OUTAGE_S, self._cluster.start)
        self.restart.start()
        return result


def test_a_job_finishing_during_an_outage_keeps_its_result(
    cluster: PostgresCluster, outage_settings: Settings, png: bytes, engine: Engine
) -> None:
    app = create_app(outage_settings)
    job_id = submit(app.test_client(), png, task="describe", webhook="http://127.0.0.1:9/hook").get_json()["id"]
    app.extensions["vlmq"].engine.dispose()
    db = make_engine(outage_settings.sqlalchemy_url)
    sessions = make_session_factory(db)
    faulty = _OutageAtTheEnd(engine, cluster)
    context = WorkerContext(
        settings=outage_settings,
        sessions=sessions,
        celery=make_celery(outage_settings),
        redis=redis.Redis.from_url(outage_settings.redis_url),
        name=worker_name(),
        engine=faulty,  # type: ignore[arg-type]
    )
    try:
        assert run_job(context, job_id) == "succeeded"
    finally:
        if faulty.restart is not None:
            faulty.restart.join()
    with sessions() as session:
        job = session.get_one(Job, job_id)
        events = session.scalars(select(WebhookDelivery.event_type).where(WebhookDelivery.job_id == job_id)).all()
    assert (job.status, job.attempts, faulty.runs) == ("succeeded", 1, 1)
    assert job.result["text"] and job.result["usage"]["completion_tokens"] > 0
    assert sorted(events) == ["job.completed", "job.started"]
    db.dispose()


def test_an_outage_as_a_job_is_claimed_puts_it_back_in_the_queue(
    cluster: PostgresCluster, outage_settings: Settings, png: bytes, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes down between the claim and reading the job: no model ran, so it is no failure."""
    app = create_app(outage_settings)
    job_id = submit(app.test_client(), png, task="describe").get_json()["id"]
    app.extensions["vlmq"].engine.dispose()
    broker = redis.Redis.from_url(outage_settings.redis_url)
    broker.flushdb()
    db = make_engine(outage_settings.sqlalchemy_url)
    sessions = make_session_factory(db)
    context = WorkerContext(
        settings=outage_settings,
        sessions=sessions,
        celery=make_celery(outage_settings),
        redis=broker,
        name=worker_name(),
        engine=engine,
    )
    restarts: list[threading.Timer] = []
    claimed = runner.enqueue_job_deliveries

    def outage_after_the_claim(*args: Any) -> None:
        claimed(*args)
        if not restarts:
            cluster.stop()
            restarts.append(threading.Timer(OUTAGE_S, cluster.start))
            restarts[0].start()

    monkeypatch.setattr(runner, "enqueue_job_deliveries", outage_after_the_claim)
    try:
        assert run_job(context, job_id) == "requeued"
    finally:
        for restart in restarts:
            restart.join()
    with sessions() as session:
        job = session.get_one(Job, job_id)
    assert (job.status, job.attempts, job.worker, job.error_code) == ("queued", 0, None, None)
    assert queued_messages(broker) == 1, "sent again, so a worker takes it without waiting for the sweeper"
    assert run_job(context, job_id) == "succeeded"
    with sessions() as session:
        assert session.get_one(Job, job_id).attempts == 1
    db.dispose()
