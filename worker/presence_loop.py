"""A daemon thread that keeps this worker's presence key alive in Redis (and its live load fresh)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import RedisError

from shared.presence import announce

log = logging.getLogger(__name__)

ANNOUNCE_EVERY_S = 10
TTL_S = 30


def start_presence(
    client: redis.Redis, name: str, info: dict[str, Any], load: Callable[[], dict[str, float]] | None = None
) -> threading.Event:
    """Announce now and every few seconds, with `load()` read afresh each time; set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                announce(client, name, info | ({"load": load()} if load else {}), TTL_S)
            except RedisError as exc:
                log.warning("could not announce worker presence: %s", exc)
            if stop.wait(ANNOUNCE_EVERY_S):
                return

    threading.Thread(target=loop, name="presence", daemon=True).start()
    return stop
