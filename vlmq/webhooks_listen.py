"""`vlmq webhooks listen`: a tiny receiver that verifies deliveries and prints them.

For local testing: point a job's `webhook` at it (and allow loopback with
`VLMQ_WEBHOOK_ALLOW_HOSTS=127.0.0.1`). Verified deliveries are printed as one JSON
line each and answered 204; a bad signature is answered 401 and reported on stderr.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from worker.webhooks.signing import SignatureError, verify

MAX_BODY_BYTES = 4 * 1024 * 1024


def make_server(host: str, port: int, secret: str) -> ThreadingHTTPServer:
    """A receiver bound to `host:port` that checks signatures with `secret`."""

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)
            try:
                verify(secret, dict(self.headers.items()), body)
            except SignatureError as exc:
                print(f"rejected {self.headers.get('webhook-id')}: {exc}", file=sys.stderr, flush=True)
                self._answer(401)
                return
            print(json.dumps({"webhook-id": self.headers["webhook-id"], **json.loads(body)}), flush=True)
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return  # stdout carries only deliveries

    return ThreadingHTTPServer((host, port), Receiver)


def listen(host: str, port: int, secret: str) -> int:
    """Serve until Ctrl-C."""
    server = make_server(host, port, secret)
    print(f"vlmq: listening for webhooks on http://{host}:{server.server_port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
