"""Who is still waiting for a chat job, so a deadline cancels it only when nobody is.

A chat call cancels its job when it gives up at `VLMQ_MAX_WAIT_S`, so an abandoned
call does not keep a GPU busy. But a retry with the same Idempotency-Key attaches
to that job and waits longer than the first call. Each waiter writes a token of its
own into `vlmq:chat:waiter:<job id>`, expiring at its deadline; the latest waiter's
token wins. At its deadline a waiter cancels only if the token is still its own (or
gone): otherwise a later caller is still waiting and the job runs on for it.
"""

from __future__ import annotations

import secrets

import redis


def _key(job_id: str) -> str:
    return f"vlmq:chat:waiter:{job_id}"


def start_waiting(client: redis.Redis, job_id: str, wait_s: float) -> str:
    """Register a waiter until `wait_s` from now; returns its token."""
    token = secrets.token_hex(8)
    client.set(_key(job_id), token, px=max(1, int(wait_s * 1000)))
    return token


def is_last_waiter(client: redis.Redis, job_id: str, token: str) -> bool:
    """True when no caller registered after this one is still waiting."""
    current = client.get(_key(job_id))
    return current is None or current.decode() == token
