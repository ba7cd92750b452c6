"""Redis semaphores per webhook endpoint and per tenant, so one slow shop cannot take every sender thread.

A delivery needs a slot of its endpoint and one of its tenant's. A tenant has two pools:
its endpoints that failed lately (`endpoint_health`) share `VLMQ_WEBHOOK_MAX_PER_TENANT_FAILING`
slots, the others `VLMQ_WEBHOOK_MAX_PER_TENANT`; so a tenant's slow or failing endpoints
cannot keep its healthy ones waiting, and the tenant holds at most the two together.

Each holder is a member of a sorted set scored by when its slot expires; expired
members are dropped before counting, so a worker killed mid-send frees its slot
after the lease instead of leaking it forever. A delivery that finds every slot taken
is parked on the pool's waiting list in the same script, and `release` hands the freed
slot's turn to the oldest one there: no polling, and no wake-up lost between the two.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

_PREFIX = "vlmq:webhook-slots:"
_TENANT_PREFIX = "vlmq:webhook-tenant-slots:"
_FAILING_TENANT_PREFIX = "vlmq:webhook-tenant-failing-slots:"
_WAITING = ":waiting"

# KEYS: slots, waiting list. ARGV: now, ttl, limit, token, waiter ('' parks nothing).
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
  return 1
end
if ARGV[5] ~= '' then
  redis.call('LREM', KEYS[2], 0, ARGV[5])
  redis.call('RPUSH', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[2])) * 10)
end
return 0
"""

# KEYS: slots, waiting list. ARGV: token. Returns the parked delivery to wake, or nil.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  return redis.call('LPOP', KEYS[2])
end
return false
"""


def endpoint_key(url: str) -> str:
    """Deliveries to one scheme, host and port share their slots."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{_PREFIX}{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def tenant_key(tenant_id: str, failing: bool = False) -> str:
    """The tenant's pool for its healthy endpoints, or for those that failed lately."""
    return (_FAILING_TENANT_PREFIX if failing else _TENANT_PREFIX) + tenant_id


def acquire(
    client: redis.Redis, key: str, token: str, limit: int, now_ts: float, ttl_s: float, waiter: str = ""
) -> bool:
    """Take one of `limit` slots for `ttl_s` seconds; False when all are held, parking `waiter` if given."""
    return bool(client.eval(_ACQUIRE, 2, key, key + _WAITING, now_ts, ttl_s, limit, token, waiter))


def release(client: redis.Redis, key: str, token: str) -> str | None:
    """Give the slot back before its lease runs out; returns the parked delivery whose turn it is."""
    woken = client.eval(_RELEASE, 2, key, key + _WAITING, token)
    return woken.decode() if isinstance(woken, bytes) else woken
