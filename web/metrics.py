"""`GET /metrics`: Prometheus gauges read from the source of truth at scrape time.

Counting from the job table and Redis (not from in-process counters) keeps the
numbers right under any number of gunicorn processes and web hosts.
"""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from shared.celery_app import GPU_QUEUE, GPU_QUEUES, WEBHOOK_QUEUE
from shared.models import Job
from shared.presence import live_workers
from shared.states import JobStatus
from web.state import app_state

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    state = app_state()
    registry = CollectorRegistry()
    jobs = Gauge("vlmq_jobs", "Jobs in the database by status", ["status"], registry=registry)
    with state.sessions() as session:
        counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        inference_s = session.scalar(
            select(func.coalesce(func.sum(Job.inference_s), 0.0)).where(Job.status == JobStatus.SUCCEEDED.value)
        )
    for status in JobStatus:
        jobs.labels(status.value).set(counts.get(status.value, 0))
    Gauge("vlmq_inference_seconds_total", "Model time spent on succeeded jobs", registry=registry).set(inference_s)
    depth = Gauge("vlmq_broker_queue_length", "Messages waiting in a broker queue", ["queue"], registry=registry)
    for queue in (*GPU_QUEUES, WEBHOOK_QUEUE):
        depth.labels(queue).set(state.redis.llen(queue))
    workers = Gauge("vlmq_live_workers", "Workers whose presence key is fresh", ["queue"], registry=registry)
    alive = live_workers(state.redis)
    for queue in (GPU_QUEUE, WEBHOOK_QUEUE):
        workers.labels(queue).set(sum(queue in worker.get("queues", []) for worker in alive))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
