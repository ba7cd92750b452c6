"""Flask's JSON provider with vlmq's rules for request bodies (`shared.safe_json`)."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from shared import safe_json
from web.errors import ApiError


class SafeJSONProvider(DefaultJSONProvider):
    """Parses bodies with `safe_json.loads`; what it refuses is a 400 naming the problem."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return safe_json.loads(s)
        except safe_json.UnsafeJson as exc:
            # An `ApiError`, not a ValueError: `get_json(silent=True)` must not swallow it.
            raise ApiError("invalid_json", str(exc)) from None
