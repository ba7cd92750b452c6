"""The GPU worker process: loads the model, then lets Celery's threads feed it jobs.

The model is loaded (and, for GLM-4.1V/4.6V, its decode step captured) before the
worker consumes anything, so no job is taken by a process that cannot start it.
Celery runs a thread pool with one thread per batch slot and a prefetch of one
message per thread: every message a worker holds has a slot, and no job waits in
one worker's buffer while another GPU is idle. Each thread runs `run_job`, whose
`engine.run` hands the request to the shared batching loop and waits for its row.
One more thread hears the cancels the web pushes and stops those jobs at once
(`worker.cancel_listener`).
`VLMQ_GPU_INTERACTIVE_SLOTS` of the slots are kept for the interactive queue, on a
consumer of their own (`worker.interactive_lane`), so a waiting caller never waits
for bulk work to end; with none kept, the interactive queue is polled first.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial

from shared.celery_app import GPU_QUEUE, GPU_QUEUES, worker_argv
from shared.presence import withdraw
from shared.settings import Settings
from worker.cancel_listener import start_cancel_listener
from worker.context import build_context, set_context
from worker.interactive_lane import install_interactive_lane, reserved_slots
from worker.live_load import live_load
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
    reserved = reserved_slots(settings, slots)
    info = {
        "name": context.name,
        "queues": list(GPU_QUEUES),
        "pid": os.getpid(),
        "model": context.engine.model_name,
        "placeholder": context.engine.is_placeholder,
        "slots": slots,
        "interactive_slots": reserved,
        "loaded_at": int(time.time()),
    }
    presence = start_presence(context.redis, context.name, info, partial(live_load, context.engine))
    cancels = start_cancel_listener(context.redis, context.running)
    log.info(
        "model %s loaded in worker process %s (%d slots, %d kept for interactive jobs)",
        context.engine.model_name, context.name, slots, reserved,
    )  # fmt: skip
    if reserved:
        install_interactive_lane(celery, reserved)
    queues = GPU_QUEUE if reserved else ",".join(GPU_QUEUES)
    try:
        celery.worker_main(argv=worker_argv(queues, slots, "gpu", os.getpid()))
    finally:
        cancels.set()
        presence.set()
        withdraw(context.redis, context.name)
    return 0


def _exit_on_fatal(exc: BaseException) -> None:
    """The batching loop died (a CUDA fault): leave, so the supervisor starts a clean process."""
    log.critical("the batching loop crashed (%r); the worker process exits", exc)
    os._exit(EXIT_ENGINE_CRASHED)
