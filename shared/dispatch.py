"""Sending job messages, always after the job row is committed.

The Celery task id is `<job id>-<random>`, so the sweeper can tell from the broker
which jobs still have a live message.
"""

from __future__ import annotations

import logging
import secrets

from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import GPU_QUEUE, INTERACTIVE_QUEUE, RUN_JOB_TASK
from shared.clock import utcnow
from shared.jobs import mark_enqueued

log = logging.getLogger(__name__)


def job_id_of_task(task_id: str) -> str:
    """The job id a run-job task id was made from."""
    return task_id.split("-", 1)[0]


def enqueue_job(celery: Celery, sessions: sessionmaker[Session], job_id: str, interactive: bool = False) -> bool:
    """Send the run message for a committed, queued job; False when the broker is down.

    Interactive jobs (a caller is waiting) go to the queue GPU workers drain first.

    A job whose send fails stays `queued` and the sweeper sends it again, so the
    caller may still report the job as accepted.
    """
    try:
        queue = INTERACTIVE_QUEUE if interactive else GPU_QUEUE
        celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue, task_id=f"{job_id}-{secrets.token_hex(4)}")
    except OperationalError as exc:
        log.warning("could not enqueue job %s (the sweeper will retry): %s", job_id, exc)
        return False
    with sessions.begin() as session:
        mark_enqueued(session, job_id, utcnow())
    return True
