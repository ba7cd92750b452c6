"""Celery tasks: thin wrappers that take an id and call plain functions."""

from __future__ import annotations

from dataclasses import asdict

from celery import Celery

from shared.celery_app import DELIVER_WEBHOOK_TASK, DISPATCH_WEBHOOKS_TASK, RUN_JOB_TASK, SWEEP_TASK
from shared.clock import utcnow
from worker.context import get_context
from worker.runner import run_job
from worker.sweeper import sweep


def register_tasks(celery: Celery) -> None:
    """Attach vlmq's tasks to `celery` (the app is built per process by a factory)."""

    @celery.task(name=RUN_JOB_TASK)
    def run_job_task(job_id: str) -> str:
        return run_job(get_context(), job_id)

    @celery.task(name=SWEEP_TASK, acks_late=False)
    def sweep_task() -> dict[str, int]:
        ctx = get_context()
        return asdict(sweep(ctx.settings, ctx.sessions, ctx.celery, ctx.redis, utcnow()))

    # Acked on receipt: after a crash mid-send the row's lease runs out and `dispatch_due`
    # sends a fresh message, instead of Redis holding the old one for the visibility timeout.
    @celery.task(name=DELIVER_WEBHOOK_TASK, acks_late=False)
    def deliver_webhook_task(delivery_id: str) -> str:
        from worker.webhooks.delivery import deliver  # imported here so GPU processes never load the sender

        return deliver(get_context(), delivery_id, utcnow())

    @celery.task(name=DISPATCH_WEBHOOKS_TASK, acks_late=False)
    def dispatch_webhooks_task() -> int:
        from worker.webhooks.due import dispatch_due

        ctx = get_context()
        return dispatch_due(ctx.settings, ctx.sessions, ctx.celery, ctx.redis, utcnow())
