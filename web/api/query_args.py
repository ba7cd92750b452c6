"""Reading bounded query-string parameters and times, with errors that name what is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import request

from web.errors import ApiError


def int_query_arg(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within bounds, or a 400 naming them."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"invalid_{name}", f"{name} must be an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ApiError(f"invalid_{name}", f"{name} must be an integer from {low} to {high}")
    return value


def time_query_arg(name: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 time query parameter (UTC when it names no offset), or a 400."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(f"invalid_{name}", f"{name} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
