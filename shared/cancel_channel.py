"""Cancels pushed from the web to the GPU workers, so a running job stops within moments.

After a cancel commits, the web publishes the canceled job ids on one Redis pub/sub
channel, `vlmq:cancel`; every GPU worker process listens (`worker.cancel_listener`)
and stops the generation of any of those jobs it is running. Pub/sub rather than a
stream: only the worker running the job right now cares, and nothing needs replaying.

Publishing is best-effort: a message lost to a Redis hiccup, or one sent while a
worker was reconnecting, is covered by the worker's DB heartbeat, which notices the
cancel within `heartbeat_interval_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "vlmq:cancel"
IDS_PER_MESSAGE = 500  # a 500-job batch cancel is one message of about 15 kB
_SEPARATOR = " "


def publish_canceled(client: redis.Redis, job_ids: Sequence[str]) -> None:
    """Tell the GPU workers these jobs were canceled; call after the cancel has committed."""
    try:
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(job_ids), IDS_PER_MESSAGE):
            pipe.publish(CHANNEL, _SEPARATOR.join(job_ids[start : start + IDS_PER_MESSAGE]))
        pipe.execute()
    except RedisError as exc:
        log.warning("could not push the cancel of %d job(s); heartbeats will notice: %s", len(job_ids), exc)


def canceled_ids(data: bytes) -> list[str]:
    """The job ids of one message on `CHANNEL`."""
    return data.decode().split(_SEPARATOR)
