"""The budget guard against the real llguidance matcher: every answer closes inside its budget.

A random "model" picks any token the matcher allows; the guard's rule decides what is
emitted. Every forced token must be one the matcher accepts, the invariant
`remaining >= cost` must hold after every step, and the end state must be accepting
with JSON that validates, for budgets from the bare minimum up.
"""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.schema_plan import ANY_OBJECT
from worker.inference.budget_guard import TokenBytes
from worker.inference.constrained import ConstraintFactory, new_matcher, request_schema
from worker.inference.engine_contract import InferenceError
from worker.inference.placeholder.checkpoint import TINY_VOCAB
from worker.inference.placeholder.tokenizer import build_tokenizer

LISTING = {
    "type": "object",
    "properties": {
        "size": {"enum": ["S", "M", "L", "XL", 10, None]},
        "price": {"type": "number", "minimum": 0, "maximum": 10000},
        "rating": {"type": "number"},
        "in_stock": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
        "title": {"type": "string"},  # length left open: the guard bounds it
    },
    "required": ["size", "price", "title"],
}
NESTED = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 60},
        "dims": {
            "type": "object",
            "properties": {
                "w": {"type": "integer", "minimum": 1},
                "h": {"type": "integer", "minimum": -20, "exclusiveMaximum": 0},
                "unit": {"const": "cm"},
            },
            "required": ["w", "unit"],
        },
        "variants": {
            "type": "array",
            "minItems": 2,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string", "minLength": 2}, "qty": {"type": "integer"}},
                "required": ["sku"],
            },
        },
    },
    "required": ["title", "dims", "variants"],
}
SCHEMAS = {"default": DEFAULT_PRODUCT_SCHEMA, "listing": LISTING, "nested": NESTED, "json_mode": ANY_OBJECT}


@pytest.fixture(scope="module")
def factory() -> ConstraintFactory:
    """The llguidance view of the tiny offline tokenizer, built as the engine builds it."""
    tokenizer = build_tokenizer("glm4v", TINY_VOCAB)
    return ConstraintFactory(tokenizer, TINY_VOCAB, [tokenizer.convert_tokens_to_ids("<|endoftext|>")])


def allowed_tokens(matcher: Any) -> list[int]:
    mask = int.from_bytes(matcher.compute_bitmask(), "little")
    return [token for token in range(TINY_VOCAB) if mask >> token & 1]


def generate(factory: ConstraintFactory, schema: dict[str, Any], budget: int, rng: random.Random) -> tuple[bytes, int]:
    """One answer of a random model under the guard's rule; returns the bytes and how many tokens were forced."""
    matcher = new_matcher(factory.ll_tokenizer, schema)
    guard = factory.guard(schema)
    assert guard.cost() <= budget
    emitted = b""
    forced = 0
    for step in range(budget):
        remaining = budget - step
        allowed = allowed_tokens(matcher)
        sampled = rng.choice(allowed)
        token = guard.choose(sampled, remaining)
        forced += token != sampled
        assert token in allowed, f"forced token {token} refused after {emitted!r}"
        if token in factory.end_ids:
            break
        assert matcher.consume_token(token), matcher.get_error()
        emitted += factory.vocab().pieces[token] or b""
        assert guard.cost() <= remaining - 1, f"invariant broken after {emitted!r}"
    assert matcher.is_accepting() and guard.complete, f"unfinished: {emitted!r}"
    return emitted, forced


@pytest.mark.parametrize("name", SCHEMAS)
def test_random_answers_always_close_within_small_budgets(factory: ConstraintFactory, name: str) -> None:
    schema = request_schema({"schema": SCHEMAS[name]})
    smallest = factory.minimal_cost(schema)
    rng = random.Random(13)
    forced_total = 0
    for extra in (0, 0, 0, 1, 1, 2, 3, 5, 7, 9, 12, 17, 23, 30, 45, 60, 90, 120, 200, 400) * 4:
        emitted, forced = generate(factory, schema, smallest + extra, rng)
        jsonschema.validate(json.loads(emitted), schema)
        forced_total += forced
    assert forced_total > 0, "the budgets should have been tight enough to need the guard"


def test_json_mode_lets_keys_and_any_values_through(factory: ConstraintFactory) -> None:
    """OpenAI's `json_object` means any object: the grammar takes keyed, nested documents, not only `{}`."""
    schema = request_schema({"schema": ANY_OBJECT})
    document = b'{"colour":"red","sizes":[38,39.5],"stock":{"shop":true,"web":null}}'
    matcher = new_matcher(factory.ll_tokenizer, schema)
    assert all(matcher.consume_token(token) for token in factory.vocab().encode(document)), matcher.get_error()
    assert matcher.is_accepting()
    rng = random.Random(5)
    answers = [json.loads(generate(factory, schema, budget, rng)[0]) for budget in (8, 16, 32, 64) * 4]
    assert any(answer for answer in answers), "a random model under the grammar should write some key"


def test_greedy_encoding_is_suffix_consistent() -> None:
    vocab = TokenBytes([b"a", b"b", b"ab", b"abc", b'"', b'"}', None, b"c"])
    assert vocab.encode(b'abcab"}') == (3, 2, 5)
    assert vocab.encode(b'ab"}') == (2, 5)
    assert vocab.encode(b'"}') == (5,)


def test_engine_refuses_a_schema_it_could_not_finish() -> None:
    with pytest.raises(InferenceError) as caught:
        request_schema({"schema": {"type": "object", "properties": {"s": {"type": "string", "pattern": "x"}}}})
    assert caught.value.code == "invalid_schema" and "pattern" in caught.value.message


def test_request_schema_fills_in_additional_properties(factory: ConstraintFactory) -> None:
    schema = request_schema({"schema": LISTING})
    assert schema["additionalProperties"] is False and "additionalProperties" not in LISTING
