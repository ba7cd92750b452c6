"""Absolute links in responses, behind a proxy or not (the rule is `shared.public_url`)."""

from __future__ import annotations

from flask import request

from shared import public_url
from web.app_state import app_state


def base_url() -> str:
    """`VLMQ_PUBLIC_URL` when set, else the URL this request came in on."""
    return public_url.base_url(app_state().settings, request.host_url)
