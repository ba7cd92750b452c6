"""Schema-constrained `attributes`: valid every time, or a clear error, never partial data."""

from __future__ import annotations

import json

import jsonschema
import pytest

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from worker.inference.engine import HFEngine
from worker.inference.types import GenerationParams, InferenceError

RUNS = 50


def test_random_weights_always_produce_valid_product_json(glm_fp32: HFEngine, make_request) -> None:
    lengths = []
    for _ in range(RUNS):
        result = glm_fp32.run(make_request("attributes", "json"))
        jsonschema.validate(result.data, DEFAULT_PRODUCT_SCHEMA)
        assert json.loads(result.text) == result.data
        lengths.append(result.usage["completion_tokens"])
    assert max(lengths) < 2000, "budget too tight for the test vocabulary"


def test_nf4_engine_produces_valid_product_json(glm_nf4: HFEngine, make_request) -> None:
    for _ in range(3):
        jsonschema.validate(glm_nf4.run(make_request("attributes", "json")).data, DEFAULT_PRODUCT_SCHEMA)


def test_custom_schema(glm_fp32: HFEngine, make_request) -> None:
    schema = {
        "type": "object",
        "properties": {
            "size": {"enum": ["S", "M", "L"]},
            "price": {"type": "number", "minimum": 0, "maximum": 10000},
            "in_stock": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
        },
        "required": ["size", "price", "in_stock", "tags"],
        "additionalProperties": False,
    }
    for _ in range(10):
        result = glm_fp32.run(make_request("attributes", "json", options={"schema": schema}))
        jsonschema.validate(result.data, schema)


def test_budget_too_small_is_truncation_not_partial_data(glm_fp32: HFEngine, make_request) -> None:
    tight = GenerationParams(max_new_tokens=8, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    with pytest.raises(InferenceError) as caught:
        glm_fp32.run(make_request("attributes", tight))
    assert caught.value.code == "output_truncated"


def test_prompt_carries_the_schema(glm_fp32: HFEngine, make_request) -> None:
    request = make_request("attributes")
    text = glm_fp32.prompts.instruction(request, DEFAULT_PRODUCT_SCHEMA)
    assert json.dumps(DEFAULT_PRODUCT_SCHEMA) in text
