"""Input every database and every client cannot store or parse back is a 400 at submit.

Before these checks: NaN came back as bare `NaN` (breaking JSON parsers on the whole job
list), a lone surrogate broke webhooks and batch results later, NUL and NaN were 500s
on PostgreSQL, and deep nesting was a 500 everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from tests.support.helpers import assert_nothing_stored, data_uri, image_bytes, submit

IMAGE = data_uri(image_bytes())


def raw_json(client: FlaskClient, path: str, text: str) -> Any:
    return client.post(path, data=text, content_type="application/json")


def job_body(**fields: str) -> str:
    """A job body with raw JSON text spliced in, so it can hold what `json.dumps` would not write."""
    parts = ['"task": "describe"', f'"image": "{IMAGE}"', *(f'"{name}": {value}' for name, value in fields.items())]
    return "{" + ", ".join(parts) + "}"


Send = Callable[[FlaskClient], Any]

CASES: dict[str, tuple[Send, str, str]] = {
    "NaN in metadata": (lambda c: raw_json(c, "/v1/jobs", job_body(metadata='{"w": NaN}')), "invalid_json", "NaN"),
    "Infinity in metadata": (
        lambda c: raw_json(c, "/v1/jobs", job_body(metadata='{"w": -Infinity}')),
        "invalid_json",
        "Infinity",
    ),
    "lone surrogate in metadata": (
        lambda c: raw_json(c, "/v1/jobs", job_body(metadata='{"sku": "a\\ud800b"}')),
        "invalid_json",
        "metadata.sku: contains a lone UTF-16 surrogate",
    ),
    "lone surrogate in a key": (
        lambda c: raw_json(c, "/v1/jobs", job_body(metadata='{"\\udfff": 1}')),
        "invalid_json",
        "surrogate",
    ),
    "NUL in a JSON prompt": (
        lambda c: raw_json(c, "/v1/jobs", job_body(task='"ask"', prompt='"size?\\u0000"')),
        "invalid_json",
        "prompt: contains a NUL character",
    ),
    "NUL in a form prompt": (
        lambda c: submit(c, image_bytes(), task="ask", prompt="size?\x00"),
        "invalid_request",
        "NUL",
    ),
    "NaN in form metadata": (
        lambda c: submit(c, image_bytes(), task="describe", metadata='{"w": NaN}'),
        "invalid_json",
        "form field 'metadata'",
    ),
    "deeply nested metadata": (
        lambda c: raw_json(c, "/v1/jobs", job_body(metadata='{"a": ' * 40 + "1" + "}" * 40)),
        "invalid_json",
        "nested more than",
    ),
    "nesting past the recursion limit": (
        lambda c: raw_json(c, "/v1/jobs", job_body(metadata="[" * 100_000 + "]" * 100_000)),
        "invalid_json",
        "nested more than",
    ),
    "NaN in batch item metadata": (
        lambda c: raw_json(
            c, "/v1/batches", f'{{"task": "describe", "items": [{{"image": "{IMAGE}", "metadata": {{"w": NaN}}}}]}}'
        ),
        "invalid_json",
        "NaN",
    ),
    "surrogate in a chat message": (
        lambda c: raw_json(
            c,
            "/v1/chat/completions",
            json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).replace('"x"', '"\\ud83d"'),
        ),
        "invalid_json",
        "surrogate",
    ),
    "NUL in the URL path": (lambda c: c.get("/v1/jobs/job_%00x"), "invalid_request", "the URL path"),
    "NUL in a query argument": (lambda c: c.get("/v1/jobs?cursor=job_%00"), "invalid_request", "cursor"),
    "NUL in Idempotency-Key": (
        lambda c: submit(c, image_bytes(), task="describe", headers={"Idempotency-Key": "k\x00"}),
        "invalid_request",
        "Idempotency-Key",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_unstorable_input_is_a_400_that_changes_nothing(
    case: str, client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    send, code, detail = CASES[case]
    response = send(client)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert detail in error["message"]
    assert_nothing_stored(sessions, broker)
