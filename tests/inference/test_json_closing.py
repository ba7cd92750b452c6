"""The closing planner on hand-written prefixes: shortest, valid, canonical; and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from shared.json_closing import Closer, ClosingError, closing_bytes
from shared.product_schema import DEFAULT_ATTRIBUTES_BUDGET, DEFAULT_PRODUCT_SCHEMA, LARGEST_ANSWER_BYTES
from shared.schema_plan import ANY_OBJECT, UnsupportedSchema, compile_schema, normalized
from shared.settings import Settings

PRODUCT = compile_schema(DEFAULT_PRODUCT_SCHEMA)
TAIL = b',"color":"-","material":"-","key_features":["-"],"marketing_copy":"-"}'


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def assert_closes(schema: dict[str, Any], prefix: bytes, expected: bytes) -> None:
    """`prefix + closing` validates, and the closing is canonical: every step along it keeps the rest."""
    plan = compile_schema(schema)
    closing = closing_bytes(plan, prefix)
    assert closing == expected
    jsonschema.validate(json.loads(prefix + closing), schema)
    for cut in range(len(closing) + 1):
        assert closing_bytes(plan, prefix + closing[:cut]) == closing[cut:]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"", b'{"category":"-"' + TAIL),
        (b"{", b'"category":"-"' + TAIL),
        (b'{"cat', b'egory":"-"' + TAIL),
        (b'{"category":', b'"-"' + TAIL),
        (b'{"category":"', b'-"' + TAIL),  # minLength 1
        (b'{"category":"Sofa', b'"' + TAIL),
        (b'{"category":"a\\', b'n"' + TAIL),  # an open escape becomes \n
        (b'{"category":"a\\u00', b'0a"' + TAIL),  # \u000a: llguidance only emits \u for control characters
        (b'{"category":"a\\u007', b'f"' + TAIL),
        (b'{"category":"\xe4', b'\x80\x80"' + TAIL),  # a cut 3-byte character is finished, not dropped
        (b'{"category":"\xe0', b'\xa0\x80"' + TAIL),  # ... without an overlong form
        (b'{"category":"\xf0\x9f', b'\x80\x80"' + TAIL),
        (
            b'{"category":"a","color":"b","material":"c","key_features":[',
            b'"-"],"marketing_copy":"-"}',
        ),  # minItems 1
        (b'{"category":"a","color":"b","material":"c","key_features":["x"', b'],"marketing_copy":"-"}'),
        (b'{"category":"a","color":"b","material":"c","key_features":["x",', b'"-"],"marketing_copy":"-"}'),
        (b'{"category":"a","color":"b","material":"c","key_features":["x"],"marketing_copy":"Nice', b'"}'),
    ],
)
def test_product_schema_prefixes(prefix: bytes, expected: bytes) -> None:
    assert_closes(DEFAULT_PRODUCT_SCHEMA, prefix, expected)


NUMBERS = obj(
    {
        "n": {"type": "number"},
        "price": {"type": "number", "minimum": 0, "maximum": 10000},
        "delta": {"type": "number", "minimum": -5, "maximum": 5},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
        "below": {"type": "integer", "exclusiveMaximum": -7},
    }
)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b'{"n":', b'0,"price":0,"delta":0,"year":1900,"below":-8}'),
        (b'{"n":-', b'1,"price":0,"delta":0,"year":1900,"below":-8}'),
        (b'{"n":1.', b'0,"price":0,"delta":0,"year":1900,"below":-8}'),
        (b'{"n":1e', b'0,"price":0,"delta":0,"year":1900,"below":-8}'),
        (b'{"n":1E-', b'0,"price":0,"delta":0,"year":1900,"below":-8}'),
        (b'{"n":12.5,"price":99.', b'0,"delta":0,"year":1900,"below":-8}'),
        (b'{"n":0,"price":0,"delta":-0', b'.1,"year":1900,"below":-8}'),  # llguidance never ends a bounded -0
        (b'{"n":0,"price":0,"delta":-', b'1,"year":1900,"below":-8}'),
        (b'{"n":0,"price":0,"delta":0,"year":1', b'900,"below":-8}'),
        (b'{"n":0,"price":0,"delta":0,"year":2', b'000,"below":-8}'),
        (b'{"n":0,"price":0,"delta":0,"year":19', b'00,"below":-8}'),
        (b'{"n":0,"price":0,"delta":0,"year":1999,"below":-', b"8}"),
        (b'{"n":0,"price":0,"delta":0,"year":1999,"below":-1', b"0}"),
    ],
)
def test_number_prefixes(prefix: bytes, expected: bytes) -> None:
    assert_closes(NUMBERS, prefix, expected)


def test_optional_properties_literals_and_nesting() -> None:
    schema = obj(
        {
            "size": {"enum": ["XL", "S", 10, 1, None]},
            "note": {"type": "string", "maxLength": 5},
            "dims": obj({"w": {"type": "integer"}, "unit": {"const": "cm"}}, ["unit"]),
            "ok": {"type": "boolean"},
            "rows": {"type": "array", "items": {"type": "array", "items": {"type": "null"}, "minItems": 2}},
        },
        ["dims"],
    )
    assert compile_schema(schema).minimal == b'{"dims":{"unit":"cm"}}'
    assert_closes(schema, b'{"size":', b'1,"dims":{"unit":"cm"}}')  # the shortest enum value
    assert_closes(schema, b'{"size":1', b',"dims":{"unit":"cm"}}')  # 1 is whole, 10 would go on
    assert_closes(schema, b'{"size":"', b'S","dims":{"unit":"cm"}}')
    assert_closes(schema, b'{"size":"S",', b'"dims":{"unit":"cm"}}')  # after ',' the required one is cheapest
    assert_closes(schema, b'{"size":"S","n', b'ote":"","dims":{"unit":"cm"}}')  # a started key is kept
    assert_closes(schema, b'{"dims":{"w":-', b'1,"unit":"cm"}}')
    assert_closes(schema, b'{"dims":{"unit":"c', b'm"}}')
    assert_closes(schema, b'{"dims":{"unit":"cm"},"rows":[[', b"null,null]]}")
    assert_closes(schema, b'{"dims":{"unit":"cm"},"rows":[[null,null],', b"[null,null]]}")
    assert_closes(schema, b'{"dims":{"unit":"cm"},"ok":t', b"rue}")
    assert_closes(schema, b'{"dims":{"unit":"cm"},"ok":false', b"}")
    assert_closes(schema, b'{"dims":{"unit":"cm"}', b"}")
    assert_closes(schema, b'{"dims":{"unit":"cm"},', b'"ok":true}')  # after ',' some property must follow


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"", b"{}"),
        (b"{", b"}"),
        (b'{"', b'":0}'),
        (b'{"colour', b'":0}'),
        (b'{"colour"', b":0}"),
        (b'{"colour":', b"0}"),
        (b'{"colour":"re', b'"}'),
        (b'{"colour":"red",', b'"":0}'),
        (b'{"n":-', b"1}"),
        (b'{"n":1.5e', b"0}"),
        (b'{"ok":t', b"rue}"),
        (b'{"x":n', b"ull}"),
        (b'{"tags":[', b"]}"),
        (b'{"tags":["a",', b"0]}"),
        (b'{"dims":{"w":[{"u":', b"0}]}}"),
        (b'{"a":{},"b":[],"c":[[1,2],{"d":null}]', b"}"),
    ],
)
def test_open_object_prefixes(prefix: bytes, expected: bytes) -> None:
    """JSON mode's schema: any keys, any values, nested as deep as the model goes."""
    assert_closes(ANY_OBJECT, prefix, expected)


@pytest.mark.parametrize("prefix", [b'{"a"}', b'{"a":1,}', b'{"a":]', b'{"a":1 ', b"[", b'{"a":x'])
def test_an_open_object_still_takes_only_json(prefix: bytes) -> None:
    with pytest.raises(ClosingError):
        closing_bytes(compile_schema(ANY_OBJECT), prefix)


def test_keys_are_written_as_llguidance_writes_them() -> None:
    schema = obj({'é"k': {"type": "string", "minLength": 2}})
    assert compile_schema(schema).minimal == '{"é\\"k":"--"}'.encode()
    assert_closes(schema, '{"é'.encode(), b'\\"k":"--"}')


def test_a_finished_document_needs_nothing_and_takes_nothing() -> None:
    closer = Closer(PRODUCT)
    closer.feed(b'{"category":"a","color":"b","material":"c","key_features":["x"],"marketing_copy":"y"}')
    assert closer.complete and closer.closing() == b""
    with pytest.raises(ClosingError):
        closer.feed(b" ")


@pytest.mark.parametrize(
    "prefix",
    [b"[", b'{"colour"', b'{"category":5', b'{"category":"a","category"', b'{"category":""', b'{"category":"\x01'],
)
def test_bytes_the_grammar_cannot_emit_are_an_error(prefix: bytes) -> None:
    with pytest.raises(ClosingError):
        closing_bytes(PRODUCT, prefix)


def test_copy_tries_bytes_without_committing() -> None:
    closer = Closer(PRODUCT)
    closer.feed(b'{"category":"')
    trial = closer.copy()
    trial.feed(b'ab"')
    assert trial.closing() == TAIL
    assert closer.closing() == b'-"' + TAIL


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        (obj({"sku": {"type": "string", "pattern": "^[A-Z]+$"}}), "params.schema.properties.sku: pattern"),
        (obj({"sku": {"type": "string", "format": "email"}}), "format not supported"),
        (obj({"v": {"anyOf": [{"type": "string"}, {"type": "null"}]}}), "params.schema.properties.v: needs a single"),
        (obj({"v": {"type": ["string", "null"]}}), "needs a single 'type'"),
        (obj({"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}), "uniqueItems"),
        (obj({"tags": {"type": "array"}}), "needs 'items'"),
        (obj({"p": {"type": "number", "minimum": 0.5}}), "whole number"),
        (obj({"p": {"type": "number", "exclusiveMinimum": 0}}), "exclusiveMinimum not supported"),
        (obj({"s": {"type": "string", "minLength": 5, "maxLength": 2}}), "maxLength is below minLength"),
        (obj({"e": {"enum": [{"a": 1}]}}), "enum/const values must be"),
        ({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}, "additionalProperties"),
        (obj({"a": {"type": "null"}}) | {"additionalProperties": True}, "or true on an object without properties"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "required names ['x'] not in properties"),
        (obj({"x": {"$ref": "#/$defs/x"}}), "needs a single 'type'"),
    ],
)
def test_unsupported_schemas_are_refused_naming_the_place(schema: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedSchema) as caught:
        compile_schema(normalized(schema))
    assert named in str(caught.value)


def test_left_out_additional_properties_means_false() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "null"}}}}}
    strict = normalized(schema)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's schema is left alone
    assert compile_schema(strict).minimal == b"{}"


def test_default_bounds_and_budget_are_chosen_together() -> None:
    """Every field at its bound, in ASCII (one byte is at most one token), still fits the default budget."""
    properties = DEFAULT_PRODUCT_SCHEMA["properties"]
    largest = {name: "x" * spec["maxLength"] for name, spec in properties.items() if spec["type"] == "string"}
    features = properties["key_features"]
    largest["key_features"] = ["x" * features["items"]["maxLength"]] * features["maxItems"]
    jsonschema.validate(largest, DEFAULT_PRODUCT_SCHEMA)
    size = len(json.dumps(largest, separators=(",", ":")))
    assert size == LARGEST_ANSWER_BYTES
    assert LARGEST_ANSWER_BYTES + 1 <= DEFAULT_ATTRIBUTES_BUDGET == Settings().attributes_max_new_tokens


def test_settings_refuse_a_budget_below_the_default_schema_minimum() -> None:
    with pytest.raises(ValueError, match="attributes_max_new_tokens must be at least 85"):
        Settings(attributes_max_new_tokens=84)
