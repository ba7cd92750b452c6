"""Per-tenant request rate limits, counted in Redis so every web process agrees.

Flask-Limiter keeps one moving window per tenant (`VLMQ_RATE_LIMIT`) for all `/v1`
routes and the pages' upload together; a request over it gets 429 `rate_limited` with `Retry-After`.
Requests whose key is refused count per client address instead, so guessing keys is limited too.
If Redis is unreachable the limit is skipped rather than the API refused (the broker being down
already fails submissions on their own).

Only the 429 says `Retry-After` (the limiter's own headers would stamp it on every answer
and rewrite the one a 503 sets), never below 1 s.
"""

from __future__ import annotations

import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded

from shared.settings import Settings
from web.auth import current_tenant
from web.errors import ApiError, error_response

API_PREFIX = "/v1/"
ADMIN_PREFIX = "/v1/admin/"
UPLOAD_PAGE = "/upload"  # the upload form's route makes jobs like the API


def _rate_limit_key() -> str:
    """The tenant, or for the admin API (whose key is no tenant's) one bucket of its own; a request whose key
    is refused counts for its client address (the view answers it 401 when it is under the limit)."""
    if request.path.startswith(ADMIN_PREFIX):
        return "admin"
    try:
        return f"tenant:{current_tenant()}"
    except ApiError:
        return f"address:{request.remote_addr}"


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        key_func=_rate_limit_key,
        app=app,
        application_limits=[settings.rate_limit],
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 3, "socket_timeout": 5},
        strategy="moving-window",
        key_prefix="vlmq-rate",
        headers_enabled=False,
        swallow_errors=True,
    )

    @limiter.request_filter
    def _not_api() -> bool:
        """Pages (but their upload), health checks and metrics are not counted."""
        return not (request.path.startswith(API_PREFIX) or request.path == UPLOAD_PAGE)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> tuple[Response, int, dict[str, str]]:
        breached = limiter.current_limit
        wait_s = max(1, int(breached.reset_at - time.time())) if breached is not None else 1
        response, status = error_response(
            429,
            "too_many_requests",
            f"this tenant (or client address, for refused keys) sent more than {exc.limit.limit} requests "
            f"(VLMQ_RATE_LIMIT); retry in {wait_s} s",
        )
        return response, status, {"Retry-After": str(wait_s)}

    return limiter
