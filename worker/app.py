"""Starts a Celery worker for one role.

- `gpu`: prefork pool with one child; the child loads the model in
  `worker_process_init` (after fork, so the parent never touches CUDA) and keeps it
  for its whole life. Prefetch 1 and late acks come from `shared.celery_app`.
- `webhooks`: a thread pool for I/O-bound work (webhook delivery, the sweeper),
  optionally with the beat scheduler embedded.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Literal

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from shared.celery_app import GPU_QUEUE, WEBHOOK_QUEUE, make_celery
from shared.presence import withdraw
from shared.settings import Settings
from worker.context import build_context, get_context, set_context
from worker.presence_loop import start_presence
from worker.tasks import register_tasks
from worker.warmup import warm_up

log = logging.getLogger(__name__)

Role = Literal["gpu", "webhooks"]


def create_worker_app(settings: Settings) -> Celery:
    celery = make_celery(settings)
    register_tasks(celery)
    return celery


def run_worker(settings: Settings, role: Role, concurrency: int | None = None, beat: bool = False) -> None:
    """Block running a worker of `role` until it is told to stop.

    Raises `ModelLoadError` when a GPU child could not load the model (the child
    logs why and stops the whole worker, so a bad setting cannot crash-loop).
    """
    celery = create_worker_app(settings)
    load_failed = multiprocessing.Value("b", 0)
    if role == "gpu":
        _connect_gpu_process_signals(settings, celery, load_failed)
        argv = ["worker", "-Q", GPU_QUEUE, "--pool", "prefork", "--concurrency", str(concurrency or 1)]
    else:
        context = build_context(settings, celery)
        set_context(context)
        start_presence(
            context.redis, context.name, {"name": context.name, "queues": [WEBHOOK_QUEUE], "pid": os.getpid()}
        )
        argv = ["worker", "-Q", WEBHOOK_QUEUE, "--pool", "threads", "--concurrency", str(concurrency or 8)]
        if beat:
            argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    argv += ["--hostname", f"{role}@%h.{os.getpid()}", "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    celery.worker_main(argv=argv)
    if load_failed.value:
        raise ModelLoadError("the GPU worker stopped because the model could not be loaded (see the log above)")


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded with these settings on this machine."""


def _connect_gpu_process_signals(settings: Settings, celery: Celery, load_failed: Synchronized[int]) -> None:
    @worker_process_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        context = build_context(settings, celery)
        set_context(context)
        from worker.inference.loader import load_engine  # torch stays out of the parent

        try:
            context.engine = load_engine(settings)
            log.info("model warmed up in %.2f s", warm_up(context.engine))
        except Exception:
            log.exception("the model could not be loaded; stopping the GPU worker")
            load_failed.value = 1
            os.kill(os.getppid(), signal.SIGTERM)
            raise
        info = {
            "name": context.name,
            "queues": [GPU_QUEUE],
            "pid": os.getpid(),
            "model": context.engine.model_name,
            "placeholder": context.engine.is_placeholder,
        }
        start_presence(context.redis, context.name, info)
        log.info("model %s loaded in worker process %s", context.engine.model_name, context.name)

    @worker_process_shutdown.connect(weak=False)
    def _goodbye(**_: Any) -> None:
        context = get_context()
        withdraw(context.redis, context.name)
