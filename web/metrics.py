"""`GET /metrics`: Prometheus metrics read from the source of truth at scrape time.

Counting from the job table and Redis (not from in-process counters) keeps the
numbers right under any number of gunicorn processes and web hosts: the job-timing
histograms and the webhook and refusal counters are summed in Redis by every process
that observes them (`shared.telemetry`), and each GPU worker's load comes from its
presence record (`web.telemetry_collector`).

Who sees what: a scraper presenting `VLMQ_METRICS_TOKEN` (and anyone, when auth is off
and no token is set: the single-tenant embedded default) gets the whole service. With
auth on, a tenant's API key gets that tenant's own jobs only, never other tenants'
counts, queue lengths or workers; no key is a 401.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from shared.celery_app import GPU_QUEUE, GPU_QUEUES, WEBHOOK_QUEUE
from shared.models import Job
from shared.presence import live_workers
from shared.states import JobStatus
from web.app_state import AppState, app_state
from web.auth import current_tenant
from web.errors import ApiError
from web.telemetry_collector import RecordedTelemetry, WorkerLoad

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    state = app_state()
    tenant_id = _tenant_scope(state)
    registry = CollectorRegistry()
    jobs = Gauge("vlmq_jobs", "Jobs in the database by status", ["status"], registry=registry)
    by_status = select(Job.status, func.count()).group_by(Job.status)
    inference = select(func.coalesce(func.sum(Job.inference_s), 0.0)).where(Job.status == JobStatus.SUCCEEDED.value)
    if tenant_id is not None:
        by_status, inference = by_status.where(Job.tenant_id == tenant_id), inference.where(Job.tenant_id == tenant_id)
    with state.sessions() as session:
        counts = dict(session.execute(by_status).all())
        inference_s = session.scalar(inference)
    for status in JobStatus:
        jobs.labels(status.value).set(counts.get(status.value, 0))
    Gauge("vlmq_inference_seconds_total", "Model time spent on succeeded jobs", registry=registry).set(inference_s)
    if tenant_id is None:
        _add_service_gauges(state, registry)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _tenant_scope(state: AppState) -> str | None:
    """None for a whole-service scrape, else the one tenant whose jobs may be shown."""
    token = state.settings.metrics_token
    header = request.headers.get("Authorization", "")
    if token is not None and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return None
    if not state.settings.auth_enabled:
        if token is None:
            return None
        raise ApiError("unauthorized", "send 'Authorization: Bearer <VLMQ_METRICS_TOKEN>'", 401)
    return current_tenant()


def _add_service_gauges(state: AppState, registry: CollectorRegistry) -> None:
    depth = Gauge("vlmq_broker_queue_length", "Messages waiting in a broker queue", ["queue"], registry=registry)
    for queue in (*GPU_QUEUES, WEBHOOK_QUEUE):
        depth.labels(queue).set(state.redis.llen(queue))
    workers = Gauge("vlmq_live_workers", "Workers whose presence key is fresh", ["queue"], registry=registry)
    alive = live_workers(state.redis)
    for queue in (GPU_QUEUE, WEBHOOK_QUEUE):
        workers.labels(queue).set(sum(queue in worker.get("queues", []) for worker in alive))
    registry.register(WorkerLoad(alive))
    registry.register(RecordedTelemetry(state.redis))
