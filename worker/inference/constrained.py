"""JSON-schema-constrained decoding with llguidance.

A logits processor masks, at every step, all tokens the schema cannot accept next,
so sampling (custom processors run before temperature/top-p) only ever picks
allowed tokens. Whitespace is pinned (`whitespace_flexible: false`): a weak model
otherwise burns its budget on spaces. `maxLength` bounds characters, not tokens, so
a `BudgetGuard` per answer (`guard()`) steers generation to close the object before
the budget runs out; without one, a cut-off object is detected from the matcher's
state and reported, never returned.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import LogitsProcessor

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.request_rules import check_object_schema
from shared.schema_plan import compile_schema, normalized
from worker.inference.budget_guard import BudgetGuard, TokenBytes, minimal_cost
from worker.inference.engine_contract import InferenceError


def request_schema(options: dict[str, Any]) -> dict[str, Any]:
    """The schema a request asks for (its own or the product default), checked and normalized.

    Normalized as the submit check saw it (`shared.schema_plan.normalized`), so the
    grammar, the budget guard's plan and the final validation agree.
    """
    schema = options.get("schema", DEFAULT_PRODUCT_SCHEMA)
    if not isinstance(schema, dict):
        raise InferenceError("invalid_schema", "options.schema must be a JSON object")
    try:
        check_object_schema(schema)
    except ValueError as exc:
        raise InferenceError("invalid_schema", str(exc)) from exc
    return normalized(schema)


def new_matcher(ll_tokenizer: Any, schema: dict[str, Any]) -> Any:
    """An llguidance matcher for one answer: compact JSON, no flexible whitespace."""
    import llguidance

    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults={"whitespace_flexible": False})
    matcher = llguidance.LLMatcher(ll_tokenizer, grammar)
    if matcher.is_error():
        raise InferenceError("invalid_schema", f"schema not supported: {matcher.get_error()}")
    return matcher


def unpack_bitmask(bitmask: Any, vocab_size: int) -> Any:
    """(batch, ceil(V/32)) int32 bitmask → (batch, V) bool, bit i of word w = token 32*w+i.

    Plain tensor ops: llguidance's own helper is `torch.compile`d, which costs ~20 s
    per process on first use.
    """
    import torch

    shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    bits = (bitmask.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()


class SchemaMask(LogitsProcessor):
    """Masks logits to the tokens one request's llguidance matcher allows (batch size 1)."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        import llguidance.torch as llt

        self.matcher = matcher
        self.bitmask = llt.allocate_token_bitmask(1, vocab_size)
        self._fill = llt.fill_next_token_bitmask
        self._consumed: int | None = None  # sequence length the matcher has seen

    def _consume_up_to(self, input_ids: Any) -> None:
        if self._consumed is None:
            self._consumed = input_ids.shape[1]  # the prompt: not part of the object
            return
        for token in input_ids[0, self._consumed :].tolist():
            if not self.matcher.consume_token(token):
                raise InferenceError("invalid_output", f"constraint rejected token {token}: {self.matcher.get_error()}")
        self._consumed = input_ids.shape[1]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != 1:
            raise ValueError("SchemaMask supports batch size 1")
        self._consume_up_to(input_ids)
        self._fill(self.matcher, self.bitmask, 0)
        # The async copy is safe: the next call's `.tolist()` syncs before the buffer is refilled.
        allowed = unpack_bitmask(self.bitmask.to(scores.device, non_blocking=True), scores.shape[-1])
        return scores.masked_fill(~allowed, float("-inf"))


class ConstraintFactory:
    """Holds the llguidance view of the tokenizer (slow to build: once per engine)."""

    def __init__(self, tokenizer: Any, vocab_size: int, end_ids: list[int]) -> None:
        import llguidance.hf

        if not getattr(tokenizer, "is_fast", False):  # e.g. a slow tokenizer from remote code
            raise InferenceError("unsupported_task", "schema-constrained output needs a fast (tokenizers) tokenizer")
        self.vocab_size = vocab_size
        self.end_ids = end_ids
        self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=end_ids)
        self._vocab: TokenBytes | None = None

    def matcher(self, schema: dict[str, Any]) -> Any:
        """A fresh llguidance matcher for one request's schema."""
        return new_matcher(self.ll_tokenizer, schema)

    def vocab(self) -> TokenBytes:
        """Every token's bytes, for budget guards (read once, on first use)."""
        if self._vocab is None:
            self._vocab = TokenBytes.from_ll_tokenizer(self.ll_tokenizer, self.vocab_size)
        return self._vocab

    def guard(self, schema: dict[str, Any]) -> BudgetGuard:
        """A fresh budget guard for one answer to a schema from `request_schema`."""
        return BudgetGuard(compile_schema(schema), self.vocab(), self.end_ids)

    def minimal_cost(self, schema: dict[str, Any]) -> int:
        """Tokens of the schema's smallest document (a budget below it cannot be kept)."""
        return minimal_cost(compile_schema(schema), self.vocab())
