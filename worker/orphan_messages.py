"""Finding committed rows whose message was lost, for the sweeper (jobs) and `dispatch_due` (deliveries).

Kombu keeps a queue as a Redis list (one list per priority step, named
`<queue>` or `<queue>\\x06\\x16<n>`) and delivered-but-unacked messages in the
`unacked` hash. A row waiting for its message in neither has lost it (Redis
restarted, or the send after commit failed) and must be sent again. Task ids are
`<row id>-<random>` (`shared.after_commit`), so a message names its row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import redis

from shared.after_commit import row_id_of_task

_PRIORITY_SEP = "\x06\x16"
UNACKED_HASH = "unacked"
UNACKED_INDEX = "unacked_index"  # delivery tag → Unix time of delivery


def settled_before(requeue_after_s: float, now: datetime) -> datetime:
    """Rows sent (or made) before this have had time for their message to show in the broker."""
    return now - timedelta(seconds=requeue_after_s)


def orphans(
    client: redis.Redis, candidates: Sequence[str], *queues: str, delivered_since: float | None = None
) -> list[str]:
    """The `candidates` (row ids, kept in order) with no waiting or in-flight message in any of `queues`."""
    if not candidates:
        return []
    live = _ids_with_live_messages(client, *queues, delivered_since=delivered_since)
    return [row_id for row_id in candidates if row_id not in live]


def _ids_with_live_messages(client: redis.Redis, *queues: str, delivered_since: float | None = None) -> set[str]:
    """Row ids (jobs or deliveries) with a waiting or in-flight message for any of `queues`.

    With `delivered_since` (a Unix time), unacked messages delivered before it do not
    count: for a job still `queued`, such an entry belongs to a worker that took the
    message and never started the job (it died while starting, Redis restarted), and
    would otherwise hide the job until the visibility timeout.
    """
    ids: set[str] = set()
    for queue in queues:
        for key in [queue.encode(), *client.scan_iter(match=f"{queue}{_PRIORITY_SEP}*".encode())]:
            for raw in client.lrange(key, 0, -1):
                ids.add(_row_id(json.loads(raw)))
    delivered = dict(client.zrange(UNACKED_INDEX, 0, -1, withscores=True)) if delivered_since is not None else {}
    for tag, raw in client.hgetall(UNACKED_HASH).items():
        if delivered_since is None or delivered.get(tag, delivered_since) >= delivered_since:
            ids.add(_row_id(json.loads(raw)[0]))
    return ids


def _row_id(message: dict) -> str:
    return row_id_of_task(message.get("headers", {}).get("id", ""))
