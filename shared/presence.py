"""Workers announce themselves in Redis with a TTL, so `/readyz` and the pages
can tell whether anything is consuming the GPU queue and with which model."""

from __future__ import annotations

import json
from typing import Any

import redis

_PREFIX = "vlmq:worker:"


def announce(client: redis.Redis, name: str, info: dict[str, Any], ttl_s: int) -> None:
    """Mark worker `name` alive for `ttl_s` seconds."""
    client.set(_PREFIX + name, json.dumps(info), ex=ttl_s)


def withdraw(client: redis.Redis, name: str) -> None:
    """Forget a worker that is shutting down cleanly."""
    client.delete(_PREFIX + name)


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """Every worker whose announcement has not expired."""
    keys = sorted(client.scan_iter(match=_PREFIX + "*", count=100))
    values = client.mget(keys) if keys else []
    return [json.loads(v) for v in values if v is not None]
