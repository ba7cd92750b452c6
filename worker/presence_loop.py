"""A daemon thread that keeps this worker's presence key alive in Redis."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from redis.exceptions import RedisError

from shared.presence import announce

log = logging.getLogger(__name__)

ANNOUNCE_EVERY_S = 10
TTL_S = 30


def start_presence(client: redis.Redis, name: str, info: dict[str, Any]) -> threading.Event:
    """Announce now and every few seconds; set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                announce(client, name, info, TTL_S)
            except RedisError as exc:
                log.warning("could not announce worker presence: %s", exc)
            if stop.wait(ANNOUNCE_EVERY_S):
                return

    threading.Thread(target=loop, name="presence", daemon=True).start()
    return stop
