"""Absolute links in responses, behind a proxy or not (the rule is `shared.public_url`)."""

from __future__ import annotations

from flask import request

from shared import public_url
from web.app_state import app_state


def base_url() -> str:
    """`VLMQ_PUBLIC_URL` when set, else the URL this request came in on if its host is trusted."""
    settings = app_state().settings
    trusted = public_url.link_host_trusted(settings, request.host)
    return public_url.base_url(settings, request.host_url if trusted else None)
