"""Refuses requests for a host this server does not answer to, when `VLMQ_ALLOWED_HOSTS` names them.

The client writes `Host`; links never echo an untrusted one (`shared.public_url`), and with the
setting a wrong one is a 400 before any route, so nothing is stored or answered for it.
"""

from __future__ import annotations

from flask import Flask, request

from shared.public_url import allowed_hosts, host_name
from shared.settings import Settings
from web.errors import ApiError


def register_host_check(app: Flask, settings: Settings) -> None:
    if not settings.allowed_hosts:
        return
    allowed = allowed_hosts(settings)

    @app.before_request
    def _refuse_unknown_host() -> None:
        if host_name(request.host) not in allowed:
            raise ApiError(
                "invalid_host",
                f"this server answers to {', '.join(allowed)} (VLMQ_ALLOWED_HOSTS), not the Host header "
                f"{request.host[:100]!r}",
            )
