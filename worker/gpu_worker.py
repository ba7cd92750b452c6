"""The GPU worker process: loads the model, then lets Celery's threads feed it jobs.

The model is loaded (and, for GLM-4.1V/4.6V, its decode step captured) before the
worker consumes anything, so no job is taken by a process that cannot start it.
Celery runs a thread pool with one thread per batch slot and a prefetch of one
message per thread: every message a worker holds has a slot, and no job waits in
one worker's buffer while another GPU is idle. Each thread runs `run_job`, whose
`engine.run` hands the request to the shared batching loop and waits for its row.
The interactive queue is polled first, so a waiting caller goes ahead of bulk work.
"""

from __future__ import annotations

import logging
import os
import time

from shared.celery_app import GPU_QUEUES
from shared.presence import withdraw
from shared.settings import Settings
from worker.context import build_context, set_context
from worker.presence_loop import start_presence
from worker.warmup import warm_up

log = logging.getLogger(__name__)

EXIT_MODEL_LOAD = 3
EXIT_ENGINE_CRASHED = 71


def run_gpu_worker(settings: Settings, concurrency: int | None = None) -> int:
    """Block serving GPU jobs until stopped; the exit code says why it ended."""
    from worker.app import create_worker_app
    from worker.inference.loader import load_engine  # torch stays out of the supervisor

    if concurrency:
        settings = settings.model_copy(update={"gpu_max_batch": concurrency})
    celery = create_worker_app(settings)
    context = build_context(settings, celery)
    try:
        context.engine = load_engine(settings, on_fatal=_exit_on_fatal)
        log.info("model warmed up in %.2f s", warm_up(context.engine))
    except Exception:
        log.exception("the model could not be loaded; stopping the GPU worker")
        return EXIT_MODEL_LOAD
    set_context(context)
    slots = getattr(context.engine, "max_batch", 1)
    info = {
        "name": context.name,
        "queues": list(GPU_QUEUES),
        "pid": os.getpid(),
        "model": context.engine.model_name,
        "placeholder": context.engine.is_placeholder,
        "slots": slots,
        "loaded_at": int(time.time()),
    }
    presence = start_presence(context.redis, context.name, info)
    log.info("model %s loaded in worker process %s (%d slots)", context.engine.model_name, context.name, slots)
    argv = ["worker", "-Q", ",".join(GPU_QUEUES), "--pool", "threads", "--concurrency", str(slots)]
    argv += ["--hostname", f"gpu@%h.{os.getpid()}", "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    try:
        celery.worker_main(argv=argv)
    finally:
        presence.set()
        withdraw(context.redis, context.name)
    return 0


def _exit_on_fatal(exc: BaseException) -> None:
    """The batching loop died (a CUDA fault): leave, so the supervisor starts a clean process."""
    log.critical("the batching loop crashed (%r); the worker process exits", exc)
    os._exit(EXIT_ENGINE_CRASHED)
