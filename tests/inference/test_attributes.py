"""Schema-constrained `attributes`: valid every time, or a clear error, never partial data."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.schema_plan import normalized
from worker.inference.batched import BatchedEngine
from worker.inference.engine_contract import GenerationParams, InferenceError

RUNS = 12


def test_random_weights_always_produce_valid_product_json(glm_fp32: BatchedEngine, make_request) -> None:
    with ThreadPoolExecutor(RUNS) as pool:  # one batch of rows, each with its own matcher and guard
        results = list(pool.map(lambda _: glm_fp32.run(make_request("attributes", "json")), range(RUNS)))
    for result in results:
        jsonschema.validate(result.data, DEFAULT_PRODUCT_SCHEMA)
        assert json.loads(result.text) == result.data
        assert result.usage["completion_tokens"] <= 512


def test_nf4_engine_produces_valid_product_json(glm_nf4: BatchedEngine, make_request) -> None:
    for _ in range(3):
        jsonschema.validate(glm_nf4.run(make_request("attributes", "json")).data, DEFAULT_PRODUCT_SCHEMA)


def test_custom_schema(glm_fp32: BatchedEngine, make_request) -> None:
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


def test_a_budget_below_the_smallest_answer_is_refused_before_generating(glm_fp32: BatchedEngine, make_request) -> None:
    tight = GenerationParams(max_new_tokens=8, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    with pytest.raises(InferenceError) as caught:
        glm_fp32.run(make_request("attributes", tight))
    assert caught.value.code == "budget_too_small"


def test_the_batching_loop_closes_the_object_inside_any_feasible_budget(glm_fp32: BatchedEngine, make_request) -> None:
    smallest = glm_fp32.base.constraints().minimal_cost(normalized(DEFAULT_PRODUCT_SCHEMA))
    for budget in (smallest, smallest + 3, smallest + 60):
        params = GenerationParams(max_new_tokens=budget, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
        for _ in range(3):
            result = glm_fp32.run(make_request("attributes", params))
            jsonschema.validate(result.data, DEFAULT_PRODUCT_SCHEMA)
            assert result.usage["completion_tokens"] <= budget


def test_prompt_carries_the_schema(glm_fp32: BatchedEngine, make_request) -> None:
    request = make_request("attributes")
    text = glm_fp32.base.prompts.instruction(request, DEFAULT_PRODUCT_SCHEMA)
    assert json.dumps(DEFAULT_PRODUCT_SCHEMA) in text
