"""A real HTTP webhook receiver on 127.0.0.1 whose answers the test scripts.

Each request takes the next scripted behaviour (then `default`): answer a status
(with headers), hang until the test ends, reset the connection, stream a huge body,
or trickle its header lines a byte at a time.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


HANG = "hang"
RESET = "reset"
HUGE = "huge"
TRICKLE = "trickle"
TRICKLE_BYTES = 100  # one every 100 ms: each read is quick, the whole answer takes 10 s
Behaviour = Answer | str


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    thread: str


class Receiver:
    def __init__(self, default: Behaviour = Answer()) -> None:
        self.default = default
        self.script: deque[Behaviour] = deque()
        self.requests: list[Received] = []
        self.huge_bytes_sent = 0
        self._arrived = threading.Condition()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/vlmq?shop=1"

    def expect(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    def wait_for(self, count: int, timeout_s: float = 30) -> list[Received]:
        """Block until `count` requests arrived (fails the test on timeout)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise AssertionError(f"expected {count} webhook requests, got {len(self.requests)}")
            return list(self.requests)

    def release(self) -> None:
        """Let hanging handlers finish."""
        self._release.set()

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                behaviour = receiver.script.popleft() if receiver.script else receiver.default
                with receiver._arrived:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, threading.current_thread().name)
                    )
                    receiver._arrived.notify_all()
                if behaviour == HANG:
                    receiver._release.wait(60)
                    self.close_connection = True
                elif behaviour == RESET:
                    # Linger 0 makes close() send a TCP RST instead of an orderly FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                elif behaviour == HUGE:
                    self._stream_huge_body()
                elif behaviour == TRICKLE:
                    self._trickle_headers()
                else:
                    assert isinstance(behaviour, Answer)
                    self.send_response(behaviour.status)
                    for name, value in behaviour.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(behaviour.body)))
                    self.end_headers()
                    self.wfile.write(behaviour.body)

            def _stream_huge_body(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(1 << 14):
                        self.wfile.write(chunk)
                        receiver.huge_bytes_sent += len(chunk)
                except OSError:
                    pass  # the sender hung up after reading what it wanted
                self.close_connection = True

            def _trickle_headers(self) -> None:
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                    for _ in range(TRICKLE_BYTES):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                    self.wfile.write(b"\r\nContent-Length: 2\r\n\r\nok")
                except OSError:
                    pass  # the sender gave up, as it should
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
