"""Redis semaphores per webhook endpoint and per tenant, so one slow shop cannot take every sender thread.

A delivery needs a slot of its endpoint and one of its tenant: a tenant with many slow
endpoints still holds at most `VLMQ_WEBHOOK_MAX_PER_TENANT` threads, leaving the rest to
other tenants and to the sweeper that shares the light worker.

Each holder is a member of a sorted set scored by when its slot expires; expired
members are dropped before counting, so a worker killed mid-send frees its slot
after the lease instead of leaking it forever.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

_PREFIX = "vlmq:webhook-slots:"
_TENANT_PREFIX = "vlmq:webhook-tenant-slots:"

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
  return 1
end
return 0
"""


def endpoint_key(url: str) -> str:
    """Deliveries to one scheme, host and port share their slots."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{_PREFIX}{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def tenant_key(tenant_id: str) -> str:
    """Deliveries of one tenant share these slots, whatever their endpoints."""
    return _TENANT_PREFIX + tenant_id


def acquire(client: redis.Redis, key: str, token: str, limit: int, now_ts: float, ttl_s: float) -> bool:
    """Take one of `limit` slots for `ttl_s` seconds; False when all are held."""
    return bool(client.eval(_ACQUIRE, 1, key, now_ts, ttl_s, limit, token))


def release(client: redis.Redis, key: str, token: str) -> None:
    """Give the slot back before its lease runs out."""
    client.zrem(key, token)
