"""The Celery app factory shared by the web (which only sends) and the workers.

Settings that matter for long GPU jobs: one message prefetched per worker thread
(so a worker never holds a job it has no batch slot for), acks after the task ends,
messages of a crashed worker rejected back to the queue, a Redis visibility timeout
longer than the hard time limit so Redis never hands a still-running job to a second
worker, and the GPU queues polled in priority order (interactive first).
"""

from __future__ import annotations

from celery import Celery

from shared.settings import Settings

GPU_QUEUE = "gpu"
INTERACTIVE_QUEUE = "gpu-interactive"
GPU_QUEUES = (INTERACTIVE_QUEUE, GPU_QUEUE)
"""The GPU queues in the order workers drain them: a waiting caller before bulk work."""
WEBHOOK_QUEUE = "webhooks"
RUN_JOB_TASK = "vlmq.run_job"
SWEEP_TASK = "vlmq.sweep"
DELIVER_WEBHOOK_TASK = "vlmq.deliver_webhook"
DISPATCH_WEBHOOKS_TASK = "vlmq.dispatch_webhooks"


def worker_argv(queues: str, concurrency: int, role: str, pid: int) -> list[str]:
    """`celery worker` arguments of a vlmq worker: a thread pool, INFO logs, no start-up banner (its own
    `... ready.` line and vlmq's model line say what the banner would), no mingle or gossip."""
    return [
        "--quiet",
        "worker",
        *("-Q", queues, "--pool", "threads", "--concurrency", str(concurrency)),
        *("--hostname", f"{role}@%h.{pid}", "--loglevel", "INFO", "--without-mingle", "--without-gossip"),
    ]


def make_celery(settings: Settings) -> Celery:
    """Build a Celery app for `settings`; tasks are registered by `worker.tasks`."""
    app = Celery("vlmq", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_hard_time_limit_s,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            # Poll the queues in the order the worker lists them (GPU_QUEUES), not round-robin.
            "queue_order_strategy": "priority",
        },
        # A web request must not hang on a dead broker: fail fast, the sweeper resends.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        broker_connection_retry_on_startup=True,
        task_default_queue=GPU_QUEUE,
        task_routes={
            RUN_JOB_TASK: {"queue": GPU_QUEUE},
            SWEEP_TASK: {"queue": WEBHOOK_QUEUE},
            DELIVER_WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE},
            DISPATCH_WEBHOOKS_TASK: {"queue": WEBHOOK_QUEUE},
        },
        beat_schedule={
            "sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_s},
            "dispatch-webhooks": {"task": DISPATCH_WEBHOOKS_TASK, "schedule": settings.webhook_poll_interval_s},
        },
        worker_hijack_root_logger=False,
        # Task events (received, started, succeeded...) and the web's `task-sent`, so Flower and
        # `celery events` can follow jobs; they go to Redis pub/sub and never touch the queues.
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app
