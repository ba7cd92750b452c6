"""The sweeper recovers jobs whose worker died and jobs whose message was lost."""

from __future__ import annotations

import json
from datetime import timedelta

import redis
from celery import Celery
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.after_commit import row_id_of_task
from shared.celery_app import GPU_QUEUE
from shared.clock import utcnow
from shared.models import Job
from shared.settings import Settings
from tests.support.helpers import submit
from worker.sweeper import sweep


def _messages(broker: redis.Redis) -> list[str]:
    return [row_id_of_task(json.loads(raw)["headers"]["id"]) for raw in broker.lrange(GPU_QUEUE, 0, -1)]


def _claim(sessions: sessionmaker[Session], broker: redis.Redis, job_id: str) -> None:
    """What a worker does before it dies: take the message, mark the job running."""
    broker.delete(GPU_QUEUE)
    with sessions.begin() as session:
        assert jobs.start(session, job_id, "dead-worker", utcnow())


def test_job_of_a_dead_worker_is_requeued_then_failed(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
    png: bytes,
) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    for attempt in range(1, settings.max_attempts + 1):
        _claim(sessions, broker, job_id)
        too_soon = sweep(settings, sessions, celery_app, broker, utcnow())
        assert too_soon.requeued_lost == 0 and too_soon.failed_lost == 0
        later = utcnow() + timedelta(seconds=settings.heartbeat_timeout_s + 1)
        report = sweep(settings, sessions, celery_app, broker, later)
        if attempt < settings.max_attempts:
            assert report.requeued_lost == 1
            assert _messages(broker) == [job_id]
            assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "queued"
    assert report.failed_lost == 1
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "worker_lost"
    assert body["attempts"] == settings.max_attempts


def _taken_next(broker: redis.Redis, count: int) -> list[str]:
    """What workers take next: Celery's Redis transport pops with BRPOP, from the right end."""
    return [row_id_of_task(json.loads(broker.brpop([GPU_QUEUE], 1)[1])["headers"]["id"]) for _ in range(count)]


def test_recovered_jobs_go_to_the_front_of_their_queue(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
    png: bytes,
) -> None:
    lost = submit(client, png, task="describe").get_json()["id"]
    _claim(sessions, broker, lost)
    orphans = [submit(client, png, task="ocr").get_json()["id"] for _ in range(2)]
    waiting = [submit(client, png, task="ocr").get_json()["id"] for _ in range(2)]
    for _ in orphans:
        broker.rpop(GPU_QUEUE)  # Redis lost the two oldest messages
    later = utcnow() + timedelta(seconds=max(settings.heartbeat_timeout_s, settings.requeue_after_s) + 1)
    report = sweep(settings, sessions, celery_app, broker, later)
    assert (report.requeued_lost, report.resent) == (1, 2)
    # The orphans were sent after the lost job, so they are ahead of it; each group keeps its oldest first.
    assert _taken_next(broker, 5) == [*orphans, lost, *waiting]


def test_queued_job_without_a_message_is_sent_again(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
    png: bytes,
) -> None:
    lost = submit(client, png, task="describe").get_json()["id"]
    kept = submit(client, png, task="ocr").get_json()["id"]
    broker.lrem(GPU_QUEUE, 0, broker.lindex(GPU_QUEUE, -1))  # Redis lost the first message
    assert _messages(broker) == [kept]
    assert sweep(settings, sessions, celery_app, broker, utcnow()).resent == 0  # too young to judge
    later = utcnow() + timedelta(seconds=settings.requeue_after_s + 1)
    assert sweep(settings, sessions, celery_app, broker, later).resent == 1
    assert sorted(_messages(broker)) == sorted([lost, kept])


def test_queued_job_whose_enqueue_never_happened_is_sent(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
    png: bytes,
) -> None:
    job_id = submit(client, png, task="describe").get_json()["id"]
    broker.delete(GPU_QUEUE)
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=None))
    later = utcnow() + timedelta(seconds=settings.requeue_after_s + 1)
    assert sweep(settings, sessions, celery_app, broker, later).resent == 1
    assert _messages(broker) == [job_id]
    with sessions() as session:
        assert session.get(Job, job_id).enqueued_at is not None


def test_queued_job_behind_a_stale_unacked_message_is_sent_again(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    broker: redis.Redis,
    png: bytes,
) -> None:
    """A worker took the message and never started the job: its unacked entry must not hide the job."""
    job_id = submit(client, png, task="describe").get_json()["id"]
    later = utcnow() + timedelta(seconds=settings.requeue_after_s + 1)
    raw = broker.lpop(GPU_QUEUE)
    broker.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", GPU_QUEUE]))
    broker.zadd("unacked_index", {"tag-1": later.timestamp() - 1})  # just delivered: the worker is starting it
    assert sweep(settings, sessions, celery_app, broker, later).resent == 0
    broker.zadd("unacked_index", {"tag-1": utcnow().timestamp() - 3600})  # delivered an hour ago: stale
    assert sweep(settings, sessions, celery_app, broker, later).resent == 1
    assert _messages(broker) == [job_id]
