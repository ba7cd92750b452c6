"""Starts a Celery worker for one role.

- `gpu`: a supervisor process (never touches CUDA) forks the GPU worker process,
  which loads the model once and serves jobs from Celery's thread pool through the
  batching loop (`worker.gpu_worker`); a worker that dies is replaced.
- `webhooks`: a thread pool for I/O-bound work (webhook delivery, the sweeper),
  optionally with the beat scheduler embedded.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Literal

import redis
from celery import Celery

from shared import jobs
from shared.celery_app import WEBHOOK_QUEUE, make_celery, worker_argv
from shared.clock import utcnow
from shared.db import make_engine, make_session_factory
from shared.presence import withdraw
from shared.settings import Settings
from worker.context import build_context, set_context, worker_name
from worker.gpu_worker import EXIT_MODEL_LOAD, run_gpu_worker
from worker.presence_loop import start_presence
from worker.supervisor import supervise
from worker.sweeper import recover_lost
from worker.tasks import register_tasks

log = logging.getLogger(__name__)

Role = Literal["gpu", "webhooks"]


def create_worker_app(settings: Settings) -> Celery:
    celery = make_celery(settings)
    register_tasks(celery)
    return celery


def run_worker(settings: Settings, role: Role, concurrency: int | None = None, beat: bool = False) -> None:
    """Block running a worker of `role` until it is told to stop.

    Raises `ModelLoadError` when the GPU worker could not load the model (it logs why
    and is not restarted, so a bad setting cannot crash-loop).
    """
    if role == "gpu":
        code = supervise(
            lambda: run_gpu_worker(settings, concurrency),
            final_codes=frozenset({0, EXIT_MODEL_LOAD}),
            on_exit=partial(recover_jobs_of, settings),
        )
        if code == EXIT_MODEL_LOAD:
            raise ModelLoadError("the GPU worker stopped because the model could not be loaded (see the log above)")
        return
    celery = create_worker_app(settings)
    context = build_context(settings, celery)
    set_context(context)
    presence = start_presence(
        context.redis, context.name, {"name": context.name, "queues": [WEBHOOK_QUEUE], "pid": os.getpid()}
    )
    # Room for every tenant's delivery slots with threads to spare for the sweeper and other tenants.
    threads = concurrency or max(8, 2 * (settings.webhook_max_per_tenant + settings.webhook_max_per_tenant_failing))
    argv = worker_argv(WEBHOOK_QUEUE, threads, role, os.getpid())
    if beat:
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    try:
        celery.worker_main(argv=argv)
    finally:  # like the GPU worker: leave the worker list at once, not when the key expires
        presence.set()
        withdraw(context.redis, context.name)


def recover_jobs_of(settings: Settings, pid: int) -> None:
    """GPU worker process `pid` has ended: its running jobs go back to the queue now, and it leaves the worker
    list. Runs in the supervisor, between children, on connections of its own closed again before the next fork."""
    engine = make_engine(settings.sqlalchemy_url)
    broker = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    celery = make_celery(settings)
    name = worker_name(pid)
    try:
        lost = jobs.of_dead_worker(name)
        requeued, failed = recover_lost(settings, make_session_factory(engine), celery, broker, utcnow(), lost)
        withdraw(broker, name)
    finally:
        engine.dispose()
        broker.close()
        celery.close()
    if requeued or failed:
        log.warning("worker process %s ended: %d of its running jobs requeued, %d failed", name, requeued, failed)


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded with these settings on this machine."""
