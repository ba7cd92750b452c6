"""`attributes` submissions: a schema the guard cannot finish, or a budget below its smallest answer, is a 400."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from tests.support.helpers import assert_nothing_stored, data_uri, image_bytes, submit
from web.app import create_app

OPEN_LENGTHS = {  # no maxLength, no additionalProperties: accepted, the guard bounds it
    "type": "object",
    "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["title"],
}
LONG_MINIMUM = {
    "type": "object",
    "properties": {
        "notes": {"type": "string", "minLength": 300},
        "sizes": {"type": "array", "items": {"type": "integer", "minimum": 1000}, "minItems": 3},
    },
    "required": ["notes", "sizes"],
}


def pattern_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"}}}


def deep_schema(levels: int) -> dict[str, Any]:
    """Arrays of arrays: within the byte limit, but deeper than anything recursive should read."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return {"type": "object", "properties": {"a": schema}}


REFUSALS: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    "unsupported keyword": (
        {"schema": pattern_schema()},
        "invalid_request",
        ["params.schema.properties.sku: pattern not supported", "Supported: object"],
    ),
    "type union": (
        {"schema": {"type": "object", "properties": {"v": {"type": ["string", "null"]}}}},
        "invalid_request",
        ["params.schema.properties.v: needs a single 'type'"],
    ),
    "nested too deeply": ({"schema": deep_schema(22)}, "invalid_request", ["nested more than"]),
    "smallest answer over the requested budget": (
        {"schema": LONG_MINIMUM, "max_new_tokens": 200},
        "budget_too_small",
        [
            "max_new_tokens is 200",
            "at least 337,",
            "params.schema.properties.notes (minLength 300)",
            "params.schema.properties.sizes (minItems 3)",
        ],
    ),
    "default schema over the requested budget": (
        {"max_new_tokens": 40},
        "budget_too_small",
        ["max_new_tokens is 40", "the default product schema", "at least 85"],
    ),
}


@pytest.mark.parametrize("shape", ["multipart", "json"])
@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_job_refused_naming_what_to_change(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis, case: str, shape: str
) -> None:
    params, code, needles = REFUSALS[case]
    if shape == "multipart":
        response = submit(client, image_bytes(), task="attributes", params=json.dumps(params))
    else:
        body = {"task": "attributes", "image": data_uri(image_bytes()), "params": params}
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    for needle in needles:
        assert needle in error["message"]
    assert_nothing_stored(sessions, broker)


def test_default_budget_applies_when_the_request_sets_none(
    settings: Settings, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    client = create_app(settings.model_copy(update={"attributes_max_new_tokens": 300})).test_client()
    response = submit(client, image_bytes(), task="attributes", params=json.dumps({"schema": LONG_MINIMUM}))
    assert response.status_code == 400
    assert "max_new_tokens is 300" in response.get_json()["error"]["message"]
    assert_nothing_stored(sessions, broker)
    accepted = submit(
        client, image_bytes(), task="attributes", params=json.dumps({"schema": LONG_MINIMUM, "max_new_tokens": 337})
    )
    assert accepted.status_code == 202, accepted.get_data(as_text=True)


def test_open_lengths_and_the_default_schema_are_accepted(client: FlaskClient) -> None:
    custom = submit(client, image_bytes(), task="attributes", params=json.dumps({"schema": OPEN_LENGTHS}))
    assert custom.status_code == 202, custom.get_data(as_text=True)
    assert custom.get_json()["params"]["schema"] == OPEN_LENGTHS  # stored as given
    default = client.post("/v1/jobs", json={"task": "attributes", "image": data_uri(image_bytes())})
    assert default.status_code == 202
    other_task = submit(client, image_bytes(), task="describe", params=json.dumps({"max_new_tokens": 5}))
    assert other_task.status_code == 202  # budgets of other tasks are not checked against a schema


def test_batch_item_refused_by_index(client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis) -> None:
    items = [
        {"image": data_uri(image_bytes())},
        {"image": data_uri(image_bytes()), "params": {"schema": LONG_MINIMUM}},
    ]
    body = {"task": "attributes", "params": {"max_new_tokens": 100}, "items": items}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "budget_too_small"
    assert error["message"].startswith("items.1: max_new_tokens is 100")
    unsupported = {"task": "attributes", "params": {"schema": pattern_schema()}, "items": items[:1]}
    refused = client.post("/v1/batches", json=unsupported)
    assert refused.status_code == 400 and "pattern not supported" in refused.get_json()["error"]["message"]
    assert_nothing_stored(sessions, broker)


def test_multipart_batch_checks_the_shared_budget(
    client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    data = {
        "task": "attributes",
        "params": json.dumps({"max_new_tokens": 20}),
        "image": [(io.BytesIO(image_bytes()), "a.png")],
    }
    response = client.post("/v1/batches", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("items.0: max_new_tokens is 20")
    assert_nothing_stored(sessions, broker)
