"""`image_url` items of a batch: downloaded a few at a time, within one byte budget per request."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored
from web.app import create_app

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ITEMS = 4
HOLD_S = 0.3  # each download waits this long before answering, so concurrent ones overlap


def noise_png() -> bytes:
    """A PNG that does not compress: about 30 KB."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (100, 100), os.urandom(30_000)).save(buffer, format="PNG")
    return buffer.getvalue()


PHOTOS = [noise_png() for _ in range(ITEMS)]


class _Host:
    """Serves `/photo-<n>.png` and records how many downloads were in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with host._lock:
                    host.in_flight += 1
                    host.most_in_flight = max(host.most_in_flight, host.in_flight)
                time.sleep(HOLD_S)
                body = PHOTOS[int(self.path.removeprefix("/photo-").removesuffix(".png"))]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with host._lock:
                    host.in_flight -= 1

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def host() -> Iterator[_Host]:
    host = _Host()
    threading.Thread(target=host.server.serve_forever, daemon=True).start()
    yield host
    host.server.shutdown()
    host.server.server_close()


def fetching_app(settings: Settings, **overrides: object) -> Flask:
    return create_app(settings.model_copy(update={"image_url_allow_hosts": ("127.0.0.1",), **overrides}))


def url_batch(host: _Host) -> dict[str, object]:
    return {"task": "describe", "items": [{"image_url": f"{host.url}/photo-{n}.png"} for n in range(ITEMS)]}


def test_downloads_run_concurrently_up_to_the_limit(settings: Settings, host: _Host) -> None:
    app = fetching_app(settings, image_fetch_concurrency=2)
    response = app.test_client().post("/v1/batches", json=url_batch(host))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["total"] == ITEMS
    assert host.most_in_flight == 2
    app.extensions["vlmq"].engine.dispose()


def test_downloads_past_the_batch_byte_limit_are_refused(
    settings: Settings, host: _Host, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    """Every image is far under the per-image limit; together they are over the batch limit."""
    limit = sum(len(photo) for photo in PHOTOS) * 3 // 4
    app = fetching_app(settings, max_batch_bytes=limit)
    response = app.test_client().post("/v1/batches", json=url_batch(host))
    assert response.status_code == 413, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "batch_too_large"
    assert error["message"].startswith("items.") and "VLMQ_MAX_BATCH_BYTES" in error["message"]
    assert_nothing_stored(sessions, broker)
    app.extensions["vlmq"].engine.dispose()
