"""Per-tenant request rate limits, counted in Redis so every web process agrees.

Flask-Limiter keeps one moving window per tenant (`VLMQ_RATE_LIMIT`) for all `/v1`
routes and the pages' upload together; a request over it gets 429 `rate_limited` with `Retry-After`. If Redis
is unreachable the limit is skipped rather than the API refused (the broker being down
already fails submissions on their own).
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded

from shared.settings import Settings
from web.auth import current_tenant
from web.errors import error_response

API_PREFIX = "/v1/"
ADMIN_PREFIX = "/v1/admin/"
UPLOAD_PAGE = "/upload"  # the upload form's route makes jobs like the API


def _rate_limit_key() -> str:
    """The tenant, or for the admin API (whose key is no tenant's) one bucket of its own."""
    return "admin" if request.path.startswith(ADMIN_PREFIX) else f"tenant:{current_tenant()}"


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        key_func=_rate_limit_key,
        app=app,
        application_limits=[settings.rate_limit],
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 3, "socket_timeout": 5},
        strategy="moving-window",
        key_prefix="vlmq-rate",
        headers_enabled=True,
        swallow_errors=True,
    )

    @limiter.request_filter
    def _not_api() -> bool:
        """Pages (but their upload), health checks and metrics are not counted."""
        return not (request.path.startswith(API_PREFIX) or request.path == UPLOAD_PAGE)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> tuple[Response, int]:
        return error_response(
            429,
            "too_many_requests",
            f"this tenant sent more than {exc.limit.limit} requests (VLMQ_RATE_LIMIT); retry after the "
            "Retry-After header's seconds",
        )

    return limiter
