"""What a process manager (`vlmq up`) says about a worker it is restarting, for `/readyz`.

A check that only counts live workers cannot say why there are none; the manager knows
(it saw the exit code and when the next start is due) and leaves a line here. Reports
expire, so one left by a manager that died itself fades instead of misleading.
"""

from __future__ import annotations

import redis

_PREFIX = "vlmq:down:"
TTL_S = 3600
GPU_WORKER = "gpu-worker"  # the role `/readyz` looks up: `vlmq up`'s name for its GPU worker


def report_down(client: redis.Redis, role: str, message: str) -> None:
    client.set(_PREFIX + role, message, ex=TTL_S)


def clear_down(client: redis.Redis, role: str) -> None:
    client.delete(_PREFIX + role)


def down_report(client: redis.Redis, role: str) -> str | None:
    value = client.get(_PREFIX + role)
    return value.decode() if isinstance(value, bytes) else value
