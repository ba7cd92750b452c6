"""Which webhook endpoints failed lately, so their deliveries use their tenant's small pool.

An endpoint whose last attempt failed (an error, a timeout or a non-2xx answer) counts
as failing for `FAILING_FOR_S`, or until an attempt succeeds: its retries then share
`VLMQ_WEBHOOK_MAX_PER_TENANT_FAILING` slots and leave the tenant's other slots to its
endpoints that answer (`endpoint_slots`).
"""

from __future__ import annotations

import redis

_PREFIX = "vlmq:webhook-failing:"
FAILING_FOR_S = 600


def is_failing(client: redis.Redis, endpoint: str) -> bool:
    """Whether the endpoint (an `endpoint_slots.endpoint_key`) failed within `FAILING_FOR_S`."""
    return bool(client.exists(_PREFIX + endpoint))


def record(client: redis.Redis, endpoint: str, ok: bool) -> None:
    """Remember how the endpoint's latest attempt went."""
    if ok:
        client.delete(_PREFIX + endpoint)
    else:
        client.set(_PREFIX + endpoint, 1, ex=FAILING_FOR_S)
