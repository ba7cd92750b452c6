"""Every bad submission gets a clear 4xx and leaves no job row and no message behind."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored, data_uri, image_bytes, job_count, submit
from web.app import create_app


def _bomb() -> bytes:
    """A tiny PNG file that claims 20000x20000 pixels (400 MP)."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    return buffer.getvalue()


def _truncated() -> bytes:
    data = image_bytes("JPEG", (256, 256))
    return data[: len(data) // 2]


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="TIFF")
    return buffer.getvalue()


Send = Callable[[FlaskClient], Any]

# Not numbers, though lax parsing would take them for 1, 64 and 0.5.
STRICT = ({"max_new_tokens": True}, {"max_new_tokens": "64"}, {"temperature": "0.5"})

CASES: dict[str, tuple[Send, int, str]] = {
    "not an image": (lambda c: submit(c, b"hello, I am text", task="describe"), 400, "invalid_image"),
    "truncated image": (lambda c: submit(c, _truncated(), task="describe"), 400, "invalid_image"),
    "truncated header": (lambda c: submit(c, b"\x89PNG\r\n\x1a\ntruncated", task="describe"), 400, "invalid_image"),
    "empty file": (lambda c: submit(c, b"", task="describe"), 400, "empty_image"),
    "unsupported format": (lambda c: submit(c, _tiff(), task="describe"), 400, "unsupported_image_type"),
    "decompression bomb": (lambda c: submit(c, _bomb(), task="describe"), 400, "image_too_many_pixels"),
    "missing image": (lambda c: submit(c, None, task="describe"), 400, "missing_image"),
    "unknown task": (lambda c: submit(c, image_bytes(), task="summon"), 400, "invalid_request"),
    "missing task": (lambda c: submit(c, image_bytes()), 400, "invalid_request"),
    "ask without question": (lambda c: submit(c, image_bytes(), task="ask"), 400, "invalid_request"),
    "temperature out of range": (
        lambda c: submit(c, image_bytes(), task="describe", params=json.dumps({"temperature": 9})),
        400,
        "invalid_request",
    ),
    "max_new_tokens out of range": (
        lambda c: submit(c, image_bytes(), task="describe", params=json.dumps({"max_new_tokens": 100000})),
        400,
        "invalid_request",
    ),
    "max_new_tokens true": (
        lambda c: c.post("/v1/jobs", json={"task": "ocr", "image": data_uri(image_bytes()), "params": STRICT[0]}),
        400,
        "invalid_request",
    ),
    "max_new_tokens as text": (
        lambda c: submit(c, image_bytes(), task="describe", params=json.dumps(STRICT[1])),
        400,
        "invalid_request",
    ),
    "temperature as text": (
        lambda c: c.post("/v1/jobs", json={"task": "ocr", "image": data_uri(image_bytes()), "params": STRICT[2]}),
        400,
        "invalid_request",
    ),
    "unknown param": (
        lambda c: submit(c, image_bytes(), task="describe", params=json.dumps({"beam_width": 3})),
        400,
        "invalid_request",
    ),
    "option for another task": (
        lambda c: submit(c, image_bytes(), task="describe", params=json.dumps({"channel": "title"})),
        400,
        "invalid_request",
    ),
    "params not JSON": (lambda c: submit(c, image_bytes(), task="describe", params="{oops"), 400, "invalid_json"),
    "malformed JSON body": (
        lambda c: c.post("/v1/jobs", data="{not json", content_type="application/json"),
        400,
        "invalid_json",
    ),
    "bad data URI": (
        lambda c: c.post("/v1/jobs", json={"task": "ocr", "image": "http://x/y.png"}),
        400,
        "invalid_image",
    ),
    "bad base64": (
        lambda c: c.post("/v1/jobs", json={"task": "ocr", "image": "data:image/png;base64,@@@"}),
        400,
        "invalid_image",
    ),
    "wrong content type": (
        lambda c: c.post("/v1/jobs", data=b"raw", content_type="image/png"),
        415,
        "unsupported_media_type",
    ),
    "unknown field": (
        lambda c: c.post("/v1/jobs", json={"task": "ocr", "image": data_uri(image_bytes()), "colour": 1}),
        400,
        "invalid_request",
    ),
    "bad Prefer wait": (
        lambda c: submit(c, image_bytes(), task="describe", headers={"Prefer": "wait=soon"}),
        400,
        "invalid_prefer",
    ),
    "unknown parent job": (
        lambda c: submit(c, None, task="ask", prompt="and the size?", params=json.dumps({"parent_job_id": "job_x"})),
        404,
        "job_not_found",
    ),
    "invalid custom schema": (
        lambda c: submit(
            c, image_bytes(), task="attributes", params=json.dumps({"schema": {"type": "object", "properties": 3}})
        ),
        400,
        "invalid_request",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_submission_is_refused_and_changes_nothing(
    case: str, client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    send, status, code = CASES[case]
    response = send(client)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 10
    assert_nothing_stored(sessions, broker)


def test_oversized_image_gets_413(settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis) -> None:
    app = create_app(settings.model_copy(update={"max_image_bytes": 2000}))
    big = image_bytes("BMP", (64, 64))
    assert len(big) > 2000
    response = submit(app.test_client(), big, task="describe")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "image_too_large"
    assert_nothing_stored(sessions, broker)
    app.extensions["vlmq"].engine.dispose()


def test_body_over_the_request_limit_gets_json_413(settings: Settings, sessions: sessionmaker[Session]) -> None:
    app = create_app(settings.model_copy(update={"max_image_bytes": 1000}))
    response = submit(app.test_client(), b"x" * 200_000, task="describe")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert job_count(sessions) == 0
    app.extensions["vlmq"].engine.dispose()


@pytest.mark.parametrize("params", STRICT)
def test_a_number_param_must_be_a_json_number(client: FlaskClient, params: dict[str, Any]) -> None:
    response = client.post("/v1/jobs", json={"task": "ocr", "image": data_uri(image_bytes()), "params": params})
    (name,) = params
    expected = "a valid integer" if name == "max_new_tokens" else "a valid number"
    assert f"params.{name}: Input should be {expected}" in response.get_json()["error"]["message"]
