"""Client JSON Schemas are bounded at submit, and answers are checked against them in linear time."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from jsonschema import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from shared.schema_limits import MAX_SCHEMA_DEPTH, validate_output
from tests.support.helpers import assert_nothing_stored, image_bytes, submit


def with_pattern(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"sku": {"type": "string", "pattern": pattern}}}


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "nested quantifier": (with_pattern(r"^(a+)+$"), "a repeat inside a repeat"),
    "alternation under a star": (with_pattern(r"^(a|ab)*c$"), "alternatives inside a repeat"),
    "backreference": (with_pattern(r"(\w)\1"), "not a supported regular expression"),
    "lookahead": (with_pattern(r"^(?=.*\d)\w+$"), "not a supported regular expression"),
    "huge repeat count": (with_pattern(r"^a{500}$"), "a repeat count over"),
    "long pattern": (with_pattern("a" * 300), "longer than"),
    "pattern property": (
        {"type": "object", "patternProperties": {"^(x+x+)+y$": {"type": "string"}}},
        "schema.patternProperties",
    ),
    "deep nesting": (nested(MAX_SCHEMA_DEPTH // 2), f"nested more than {MAX_SCHEMA_DEPTH} levels"),
    "remote $ref": ({"type": "object", "$ref": "https://schemas.example/product.json"}, "must point inside"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_costly_schemas_are_refused_at_submit(
    case: str, client: FlaskClient, sessions: sessionmaker[Session], broker: redis.Redis
) -> None:
    schema, detail = REFUSED[case]
    response = submit(client, image_bytes(), task="attributes", params=json.dumps({"schema": schema}))
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert detail in error["message"]
    assert_nothing_stored(sessions, broker)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ordinary_schemas_pass(client: FlaskClient) -> None:
    schema = {
        "type": "object",
        "properties": {
            "sku": {"type": "string", "maxLength": 16},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 5},
            "stock": {"type": "integer", "minimum": 0},
        },
        "required": ["sku"],
    }
    response = submit(client, image_bytes(), task="attributes", params=json.dumps({"schema": schema}))
    assert response.status_code == 202, response.get_json()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_cheap_pattern_is_still_refused_for_attributes(client: FlaskClient) -> None:
    """Within the cost bounds, but the budget guard cannot close a `pattern` (issue 13): refused all the same."""
    schema = {"type": "object", "properties": {"sku": {"type": "string", "pattern": r"^[A-Z]{2,4}-\d{3,8}$"}}}
    response = submit(client, image_bytes(), task="attributes", params=json.dumps({"schema": schema}))
    assert response.status_code == 400
    assert "pattern" in response.get_json()["error"]["message"]


def test_answers_are_checked_in_linear_time_whatever_the_pattern() -> None:
    """`re` needs about 2^5000 steps to reject this answer; RE2 rejects it at once."""
    schema = with_pattern(r"^(a+)+$")
    with pytest.raises(ValidationError, match="does not match"):
        validate_output({"sku": "a" * 5000 + "!"}, schema)
    validate_output({"sku": "aaaa"}, schema)
    with pytest.raises(ValidationError, match="is not of type 'string'"):
        validate_output({"sku": 3}, schema)


def test_pattern_properties_use_the_linear_matcher() -> None:
    schema = {"type": "object", "patternProperties": {"^(x+x+)+y$": {"type": "integer"}}}
    validate_output({"x" * 3000: "not checked: the key does not match"}, schema)
    with pytest.raises(ValidationError):
        validate_output({"xxy": "a string"}, schema)
