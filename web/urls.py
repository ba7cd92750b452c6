"""Absolute links in responses, behind a proxy or not."""

from __future__ import annotations

from flask import request

from web.app_state import app_state


def base_url() -> str:
    """`VLMQ_PUBLIC_URL` when set, else the URL this request came in on."""
    return (app_state().settings.public_url or request.host_url).rstrip("/")
