"""Sheds requests that waited too long before a web thread took them.

Under twice the load a web process can serve, requests queue in gunicorn (and the
kernel's backlog) and every one of them ends late. The reverse proxy stamps when it
forwarded each request (`X-Request-Start: t=<Unix milliseconds>`, as the shipped
Caddyfile does); a request that has already waited longer than
`VLMQ_MAX_QUEUE_MS` is answered 503 with `Retry-After` at once, before any database or
Redis work, so the requests behind it are served in time. Without the header (no proxy)
nothing is shed. The probes are never shed: a busy process is not a dead one.
"""

from __future__ import annotations

import time

from flask import Flask, request

from web.app_state import app_state
from web.errors import ApiError

HEADER = "X-Request-Start"
NEVER_SHED = frozenset({"/healthz", "/readyz"})
RETRY_AFTER_S = 1


def queued_ms(header: str, now_s: float) -> float | None:
    """Milliseconds since the proxy's stamp (`t=1700000000123` or a bare number), None if unreadable."""
    value = header.strip().removeprefix("t=")
    try:
        stamp_ms = float(value)
    except ValueError:
        return None
    return now_s * 1000 - stamp_ms


def register_queue_shedding(app: Flask) -> None:
    @app.before_request
    def _shed_if_queued_too_long() -> None:
        limit = app_state().settings.max_queue_ms
        header = request.headers.get(HEADER)
        if not limit or header is None or request.path in NEVER_SHED:
            return
        waited = queued_ms(header, time.time())
        if waited is not None and waited > limit:
            raise ApiError(
                "overloaded",
                f"this request waited {waited:.0f} ms for the server (limit {limit} ms); retry shortly",
                503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
