"""Slots of the GPU worker kept for callers who wait (chat completions, `Prefer: wait`).

A Celery worker has one task consumer, which takes the next message whenever it is under
its prefetch count. With every slot busy on bulk jobs, a chat call would wait in Redis
until a bulk job ended (as the H100 service run before this lane showed: README, Benchmarks). So the
GPU worker splits its slots: the task consumer takes bulk work (`gpu`) up to `slots -
reserved` messages, and a second consumer, on its own channel, takes the interactive
queue up to `reserved`. Both hand their messages to the same thread pool of `slots`
threads, so every message the worker holds still has a thread and a batch slot.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps
from celery.worker.consumer import Consumer as TaskConsumer
from kombu import Consumer, Exchange, Queue

from shared.celery_app import INTERACTIVE_QUEUE
from shared.settings import Settings


def reserved_slots(settings: Settings, slots: int) -> int:
    """Slots kept for the interactive lane: as configured, leaving bulk work at least one."""
    return max(0, min(settings.gpu_interactive_slots, slots - 1))


def install_interactive_lane(app: Celery, reserved: int) -> None:
    """Make `app`'s worker take bulk and interactive messages on separate prefetch budgets."""

    class BulkConsumer(TaskConsumer):  # type: ignore[misc]
        """Celery's consumer, its prefetch (also as restored after a reconnect) less the reserve."""

        def __init__(self, *args: Any, initial_prefetch_count: int = 2, **kwargs: Any) -> None:
            super().__init__(*args, initial_prefetch_count=max(1, initial_prefetch_count - reserved), **kwargs)

        @property
        def max_prefetch_count(self) -> int:
            return max(1, super().max_prefetch_count - reserved)

    class InteractiveLane(bootsteps.ConsumerStep):  # type: ignore[misc]
        """Consumes the interactive queue into the worker's own task handling."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, c: Any) -> None:
            self.on_message = c.create_task_handler()
            super().start(c)

        def get_consumers(self, channel: Any) -> list[Consumer]:
            channel.basic_qos(0, reserved, False)
            queue = Queue(INTERACTIVE_QUEUE, Exchange(INTERACTIVE_QUEUE, "direct"), routing_key=INTERACTIVE_QUEUE)
            return [Consumer(channel, queues=[queue], on_message=self.on_message, accept=app.conf.accept_content)]

    app.conf.worker_consumer = BulkConsumer
    app.steps["consumer"].add(InteractiveLane)
