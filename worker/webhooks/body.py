"""The bytes a delivery sends: its stored payload, with links made absolute.

Outbox rows keep links relative (transitions know no settings); they get their base
here, on every attempt, from the one base-URL rule (`shared.public_url`).
"""

from __future__ import annotations

import json
from typing import Any

from shared.public_url import base_url
from shared.settings import Settings


def render_body(payload: dict[str, Any], settings: Settings) -> bytes:
    """The exact bytes that are signed and sent; the same on every attempt."""
    data = payload.get("data") or {}
    if isinstance(data.get("urls"), dict):
        base = base_url(settings)
        data = {**data, "urls": {name: base + path for name, path in data["urls"].items()}}
    return json.dumps({**payload, "data": data}, separators=(",", ":"), ensure_ascii=False).encode()
