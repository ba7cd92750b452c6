"""Text as it is generated, from the GPU worker to whoever streams the job's answer.

Each job has a Redis stream, `vlmq:stream:<job id>`: the worker appends a `delta`
entry per piece of new text and one `done` entry at the end; the web reads it from
the start and relays it as server-sent events. A stream rather than pub/sub: a
reader that subscribes late (the request arrived after generation began, or a retry
with the same Idempotency-Key attaches to the job) still gets every delta in order.
Streams expire an hour after their last entry.

Publishing is best-effort, like progress: a Redis hiccup is logged and never fails
a job; the reader then falls back to the finished job's text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

STREAM_TTL_S = 3600
START = "0-0"


def _key(job_id: str) -> str:
    return f"vlmq:stream:{job_id}"


def _append(client: redis.Redis, job_id: str, fields: dict[str, str]) -> None:
    try:
        pipe = client.pipeline(transaction=False)
        pipe.xadd(_key(job_id), fields)  # type: ignore[arg-type]
        pipe.expire(_key(job_id), STREAM_TTL_S)
        pipe.execute()
    except RedisError as exc:
        log.warning("could not publish streamed text of job %s: %s", job_id, exc)


def publish_delta(client: redis.Redis, job_id: str, text: str) -> None:
    """Append newly generated text (already post-processed the way the final result is)."""
    if text:
        _append(client, job_id, {"delta": text})


def publish_done(client: redis.Redis, job_id: str) -> None:
    """Mark the end of the text; call after the job's terminal transition has committed."""
    _append(client, job_id, {"done": "1"})


@dataclass(frozen=True)
class StreamRead:
    """What one read returned: new text pieces, whether `done` was seen, and where to read next."""

    deltas: list[str]
    done: bool
    cursor: str


def read_stream(client: redis.Redis, job_id: str, cursor: str, block_ms: int | None) -> StreamRead:
    """Entries after `cursor`, waiting up to `block_ms` for the first (None: do not wait)."""
    answer = client.xread({_key(job_id): cursor}, block=block_ms)
    deltas: list[str] = []
    done = False
    for _, entries in answer or []:
        for entry_id, fields in entries:
            cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            if b"delta" in fields:
                deltas.append(fields[b"delta"].decode())
            done = done or b"done" in fields
    return StreamRead(deltas=deltas, done=done, cursor=cursor)
