"""Sending job run messages, always after the job row is committed (`shared.after_commit`).

Celery's Redis transport pushes messages with LPUSH and workers take them with BRPOP,
so a queue is a list consumed from its right end. A recovered job has waited its turn
once already: `enqueue_job(..., front=broker)` moves its new message to that end.
"""

from __future__ import annotations

import logging

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from shared.after_commit import send_after_commit
from shared.celery_app import GPU_QUEUE, INTERACTIVE_QUEUE, RUN_JOB_TASK
from shared.clock import utcnow
from shared.jobs import mark_enqueued

log = logging.getLogger(__name__)

# Among the newest `SEARCHED` messages of a queue (its left end), move the one holding the task id to the end
# workers take from; atomic, so a message a worker took meanwhile is not pushed back.
_MOVE_TO_FRONT = """
local newest = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, message in ipairs(newest) do
  if string.find(message, ARGV[1], 1, true) then
    redis.call('LREM', KEYS[1], 1, message)
    redis.call('RPUSH', KEYS[1], message)
    return 1
  end
end
return 0
"""
SEARCHED = 100


def enqueue_job(
    celery: Celery,
    sessions: sessionmaker[Session],
    job_id: str,
    interactive: bool = False,
    front: redis.Redis | None = None,
) -> bool:
    """Send the run message for a committed, queued job; False when the broker is down.

    Interactive jobs (a caller is waiting) go to the queue GPU workers drain first. With
    `front` (the broker), the message goes to the front of its queue: for recovered jobs.

    A job whose send fails stays `queued` and the sweeper sends it again, so the
    caller may still report the job as accepted.
    """
    queue = INTERACTIVE_QUEUE if interactive else GPU_QUEUE
    task_id = send_after_commit(celery, RUN_JOB_TASK, job_id, queue)
    if task_id is None:
        return False
    if front is not None:
        try:
            if not front.eval(_MOVE_TO_FRONT, 1, queue, task_id, SEARCHED):
                log.info("job %s: its message was taken, or pushed past, before it could move to the front", job_id)
        except redis.RedisError as exc:
            log.warning("could not move job %s to the front (the sweeper will retry): %s", job_id, exc)
            return False
    with sessions.begin() as session:
        mark_enqueued(session, job_id, utcnow())
    return True
