"""The one rule for where absolute links point: API responses and webhook bodies alike.

`VLMQ_PUBLIC_URL` wins when set (behind a proxy it is the only right answer). Without
it, a response links to the host its request came in on; a webhook body, built on the
worker with no request, links to what `vlmq up` serves on (`VLMQ_SERVED_URL`, which
it sets for the processes it starts), else to the local default.
"""

from __future__ import annotations

from shared.settings import Settings

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def base_url(settings: Settings, request_url: str | None = None) -> str:
    """The base of absolute links, without a trailing slash; `request_url` is the request's own, if any."""
    return (settings.public_url or request_url or settings.served_url or DEFAULT_BASE_URL).rstrip("/")
