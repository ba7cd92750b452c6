"""A wall-clock deadline for one outbound HTTP exchange, headers and body included.

urllib3's timeouts bound each socket read, so a peer that sends one byte every few
seconds (of the status line, a header or the body) never trips them. A `Deadline`
shuts down the connection's socket when the time is up; the read that was waiting
then fails at once, whatever stage the exchange was in.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import urllib3


class Deadline:
    """Cuts every socket it watches `seconds` after the `with` block starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._ends_at = 0.0
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._ends_at = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._timer.cancel()

    @property
    def expired(self) -> bool:
        """True once the time is up (the exchange failed because of the deadline, if it failed)."""
        return self._expired or time.monotonic() >= self._ends_at

    def remaining_s(self) -> float:
        return max(0.0, self._ends_at - time.monotonic())

    def watch(self, sock: socket.socket | None) -> None:
        """Cut `sock` when the deadline passes (at once if it already has)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self._expired:
                _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def bound_by(pool: urllib3.HTTPConnectionPool, deadline: Deadline) -> urllib3.HTTPConnectionPool:
    """Make every connection `pool` opens watched by `deadline`; returns the pool."""
    base: Any = pool.ConnectionCls

    class _Watched(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    pool.ConnectionCls = _Watched
    return pool
