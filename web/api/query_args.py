"""Reading bounded query-string parameters, with errors that name the bounds."""

from __future__ import annotations

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
        raise ApiError(400, f"invalid_{name}", f"{name} must be an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ApiError(400, f"invalid_{name}", f"{name} must be an integer from {low} to {high}")
    return value
