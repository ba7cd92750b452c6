"""Sending a task message about a row its caller has already committed.

Both job runs and webhook deliveries follow one rule: commit the row, then send a
message carrying only its id. The message's task id is `<row id>-<random>`, so the
worker-side resender (`worker.orphan_messages`) can tell from the broker which rows
still have a live message; a send that fails is logged and left to that resender,
so the caller may still report the row as accepted.
"""

from __future__ import annotations

import logging
import secrets

import redis
from celery import Celery
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)


def row_id_of_task(task_id: str) -> str:
    """The row (job or delivery) id a task id was made from; ids never contain `-`."""
    return task_id.split("-", 1)[0]


def send_after_commit(celery: Celery, task_name: str, row_id: str, queue: str, countdown: float = 0) -> str | None:
    """Send `task_name(row_id)` to `queue`; its task id, or None when the broker is down (logged)."""
    task_id = f"{row_id}-{secrets.token_hex(4)}"
    try:
        celery.send_task(task_name, args=[row_id], queue=queue, task_id=task_id, countdown=countdown or None)
    except (OperationalError, redis.RedisError) as exc:
        log.warning("could not send %s for %s (it will be resent): %s", task_name, row_id, exc)
        return None
    return task_id
