"""The time vlmq stores in rows: timezone-aware UTC, so stored datetimes compare.

No test pins this clock globally; a test that needs a fixed time patches `utcnow`
in the module that imported it (`monkeypatch.setattr("web.auth.utcnow", ...)`).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)
