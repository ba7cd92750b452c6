"""When to try a failed delivery again: exponential backoff with jitter, or what the receiver asked.

Attempt n failing waits `base * 2**(n-1)` seconds, capped at `max_delay`, scaled by
a random factor in [0.5, 1] so that receivers recovering from an outage are not hit
by every sender at once. A `Retry-After` on 429 or 503 replaces the backoff.
"""

from __future__ import annotations

import random
from datetime import datetime
from email.utils import parsedate_to_datetime

MIN_RETRY_AFTER_S = 1.0
RETRY_AFTER_STATUSES = frozenset({429, 503})


def backoff_s(attempt: int, base_s: float, max_delay_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    ceiling = min(max_delay_s, base_s * 2 ** min(attempt - 1, 62))
    return ceiling * (rng or random).uniform(0.5, 1.0)


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return max(float(header), MIN_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), MIN_RETRY_AFTER_S)
