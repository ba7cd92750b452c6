"""Celery tasks: thin wrappers that take an id and call plain functions."""

from __future__ import annotations

from dataclasses import asdict

from celery import Celery

from shared.celery_app import RUN_JOB_TASK, SWEEP_TASK
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
