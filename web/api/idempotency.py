"""`Idempotency-Key`: a retried submission returns what the first one created."""

from __future__ import annotations

from flask import request

from web.errors import ApiError

MAX_IDEMPOTENCY_KEY = 255
REPLAYED = {"Idempotent-Replayed": "true"}


def idempotency_key() -> str | None:
    """The request's key, or None; a 400 when it is empty or too long."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key
