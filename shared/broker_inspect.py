"""Reads Redis directly to learn which jobs still have a message somewhere.

Kombu keeps a queue as a Redis list (one list per priority step, named
`<queue>` or `<queue>\\x06\\x16<n>`) and delivered-but-unacked messages in the
`unacked` hash. A queued job in neither has lost its message (Redis restarted,
or the enqueue after commit failed) and must be sent again.
"""

from __future__ import annotations

import json

import redis

from shared.dispatch import job_id_of_task

_PRIORITY_SEP = "\x06\x16"
UNACKED_HASH = "unacked"
UNACKED_INDEX = "unacked_index"  # delivery tag → Unix time of delivery


def live_job_ids(client: redis.Redis, *queues: str, delivered_since: float | None = None) -> set[str]:
    """Job ids with a waiting or in-flight message for any of `queues`.

    With `delivered_since` (a Unix time), unacked messages delivered before it do not
    count: for a job still `queued`, such an entry belongs to a worker that took the
    message and never started the job (it died while starting, Redis restarted), and
    would otherwise hide the job until the visibility timeout.
    """
    ids: set[str] = set()
    for queue in queues:
        for key in [queue.encode(), *client.scan_iter(match=f"{queue}{_PRIORITY_SEP}*".encode())]:
            for raw in client.lrange(key, 0, -1):
                ids.add(_job_id(json.loads(raw)))
    delivered = dict(client.zrange(UNACKED_INDEX, 0, -1, withscores=True)) if delivered_since is not None else {}
    for tag, raw in client.hgetall(UNACKED_HASH).items():
        if delivered_since is None or delivered.get(tag, delivered_since) >= delivered_since:
            ids.add(_job_id(json.loads(raw)[0]))
    return ids


def _job_id(message: dict) -> str:
    return job_id_of_task(message.get("headers", {}).get("id", ""))
