"""Images given by URL are downloaded at submit time, under the SSRF guard and the size limit."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job, StoredImage
from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored, image_bytes, job_count, queued_messages
from web.app import create_app

PHOTO = image_bytes(size=(80, 60), color="orange")
LIMIT = 50_000
TRICKLE_BYTES = 100  # 5 s of header bytes, well past the 1 s deadline


class _ImageHost(BaseHTTPRequestHandler):
    """Serves one good photo and every way a download can go wrong."""

    def do_GET(self) -> None:
        if self.path == "/photo.png":
            self._send(200, PHOTO)
        elif self.path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * LIMIT))
            self.end_headers()
        elif self.path == "/endless":
            self.send_response(200)
            self.end_headers()
            for _ in range(LIMIT // 1000 + 10):
                self.wfile.write(b"x" * 1000)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, PHOTO)
        elif self.path == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
            self._trickle(b"x" * TRICKLE_BYTES)
            self.wfile.write(f"\r\nContent-Length: {len(PHOTO)}\r\n\r\n".encode() + PHOTO)
        elif self.path == "/trickle-body":
            self.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(PHOTO)}\r\n\r\n".encode())
            self._trickle(PHOTO)
        else:
            self._send(404, b"no such image")

    def _trickle(self, data: bytes) -> None:
        """One byte every 50 ms: every read is quick, the whole takes seconds."""
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            time.sleep(0.05)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def fetching_app(settings: Settings) -> Iterator[Flask]:
    allowed = settings.model_copy(
        update={"image_url_allow_hosts": ("127.0.0.1",), "image_fetch_timeout_s": 1.0, "max_image_bytes": LIMIT}
    )
    app = create_app(allowed)
    yield app
    app.extensions["vlmq"].engine.dispose()


def test_image_url_is_downloaded_and_stored(
    fetching_app: Flask, image_host: str, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    response = fetching_app.test_client().post(
        "/v1/jobs", json={"task": "describe", "image_url": f"{image_host}/photo.png"}
    )
    assert response.status_code == 202, response.get_json()
    with sessions() as session:
        image = session.get(StoredImage, session.get(Job, response.get_json()["id"]).image_id)
        assert image.sha256 == hashlib.sha256(PHOTO).hexdigest()
        assert (image.width, image.height) == (80, 60)
    assert queued_messages(broker) == 1


FAILURES = {
    "not found": ("/missing.png", 400, "image_fetch_failed", "HTTP 404"),
    "redirect": ("/moved", 400, "image_fetch_failed", "HTTP 302"),
    "declared too large": ("/declared-huge", 413, "image_too_large", str(LIMIT)),
    "endless body": ("/endless", 413, "image_too_large", str(LIMIT)),
    "too slow": ("/slow", 400, "image_fetch_failed", "within 1 s"),
    "trickled headers": ("/trickle-headers", 400, "image_fetch_failed", "within 1 s"),
    "trickled body": ("/trickle-body", 400, "image_fetch_failed", "within 1 s"),
}


@pytest.mark.parametrize("case", FAILURES, ids=list(FAILURES))
def test_failed_downloads_are_refused_and_change_nothing(
    case: str, fetching_app: Flask, image_host: str, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    path, status, code, detail = FAILURES[case]
    response = fetching_app.test_client().post("/v1/jobs", json={"task": "ocr", "image_url": image_host + path})
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code
    assert detail in error["message"]
    assert_nothing_stored(sessions, broker)


@pytest.mark.parametrize(
    "url,rule",
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/photo.png", "private"),
        ("file:///etc/passwd", "http or https"),
        ("http://user:pw@example.com/a.png", "credentials"),
    ],
)
def test_internal_and_odd_urls_are_refused(
    url: str, rule: str, client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    response = client.post("/v1/jobs", json={"task": "describe", "image_url": url})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_image_url"
    assert rule in response.get_json()["error"]["message"]
    assert job_count(sessions) == 0


def test_loopback_needs_the_allowlist(client: FlaskClient, image_host: str) -> None:
    response = client.post("/v1/jobs", json={"task": "describe", "image_url": f"{image_host}/photo.png"})
    assert response.status_code == 400
    assert "VLMQ_IMAGE_URL_ALLOW_HOSTS" in response.get_json()["error"]["message"]


def test_an_invalid_request_downloads_nothing(fetching_app: Flask, image_host: str) -> None:
    started = time.monotonic()
    response = fetching_app.test_client().post("/v1/jobs", json={"task": "dance", "image_url": f"{image_host}/slow"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert time.monotonic() - started < 1  # the slow URL was never fetched


def test_image_and_image_url_together_are_refused(client: FlaskClient) -> None:
    response = client.post(
        "/v1/jobs", json={"task": "ocr", "image": "data:image/png;base64,AA==", "image_url": "http://a/b"}
    )
    assert response.status_code == 400
    assert "not both" in response.get_json()["error"]["message"]
