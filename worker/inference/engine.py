"""The engine a GPU worker holds: a loaded model and everything around generation.

`prepare()` normalises the image, renders the instruction and builds the prompt
(image before text) and, for schema-constrained requests, a fresh matcher;
`finish()` cleans, validates and redacts the answer and says why it ended. `run()`
joins them with one `generate()` call for model families without a batching loop;
GLM-4.1V/4.6V run them around the shared loop (`worker.inference.batched`).

Cleaning decoded output for users: reasoning models may emit `<think>...</think>` even
with thinking off (removed with `strip_think` for the families whose row says so), GLM
wraps answers in `<|begin_of_box|>` markers, and random-weight models emit any token:
none of that belongs in a product listing.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema

from shared.schema_limits import validate_output
from worker.inference import redaction
from worker.inference.budget_guard import BudgetGuard
from worker.inference.constrained import ConstraintFactory, SchemaMask, request_schema
from worker.inference.engine_contract import (
    GenerationParams,
    InferenceError,
    InferenceRequest,
    InferenceResult,
    ProgressCallback,
    StopSignal,
    TextCallback,
    Turn,
)
from worker.inference.families.base import InputBuilder
from worker.inference.generation import generate
from worker.inference.image_normalise import prepare_image
from worker.inference.model_parts import vision_dtype
from worker.inference.prompts import PromptBook, conversation
from worker.inference.text_deltas import TextDeltas

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")  # keeps \t and \n


def strip_think(text: str) -> str:
    """Remove reasoning: complete blocks, text before a stray `</think>`, an unclosed `<think>` tail."""
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:  # the prompt opened the block (GLM-4.1V-Thinking style)
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:  # cut off while still reasoning: nothing after it is an answer
        text = text.split("<think>", 1)[0]
    return text


def strip_tokens(text: str, tokens: Iterable[str]) -> str:
    """Delete every occurrence of the given special/added token strings."""
    ordered = sorted({t for t in tokens if t}, key=len, reverse=True)
    if not ordered:
        return text
    return re.sub("|".join(map(re.escape, ordered)), "", text)


def clean_output(text: str, special_tokens: Iterable[str]) -> str:
    """User-visible answer: control tokens and control characters removed, trimmed."""
    return _CONTROL.sub("", strip_tokens(text, special_tokens)).strip()


@dataclass
class Prepared:
    """A request ready for generation: processor outputs (CPU tensors) and its constraint."""

    inputs: dict[str, Any]
    schema: dict[str, Any] | None
    matcher: Any | None
    guard: BudgetGuard | None
    """Closes the JSON in time (used by the batching loop; `generate()` cannot swap a sampled token)."""


class HFEngine:
    """A transformers vision-language model behind the `Engine` protocol."""

    def __init__(
        self,
        model: Any,
        inputs: InputBuilder,
        prompts: PromptBook,
        *,
        model_name: str,
        is_placeholder: bool,
        image_max_side: int,
        redact_pii: bool,
        strips_reasoning: bool,
        quantization: str,
    ) -> None:
        self.model = model
        self.quantization = quantization
        """The weights' format actually loaded (what `auto` resolved to)."""
        self.inputs = inputs
        self.prompts = prompts
        self.model_name = model_name
        self.is_placeholder = is_placeholder
        self.image_max_side = image_max_side
        self.redact_pii = redact_pii
        self.strips_reasoning = strips_reasoning
        self.pixel_dtype = vision_dtype(model)
        tokenizer = inputs.tokenizer
        self.hidden_tokens = {
            *tokenizer.all_special_tokens,
            *(t.content for t in tokenizer.added_tokens_decoder.values()),
        }
        self._constraints: ConstraintFactory | None = None
        self._constraints_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        end_ids = model.generation_config.eos_token_id
        self.end_ids: list[int] = [end_ids] if isinstance(end_ids, int) else list(end_ids or [])

    def constraints(self) -> ConstraintFactory:
        """llguidance's tokenizer view, built on the first `attributes` job (~1-2 s)."""
        with self._constraints_lock:
            if self._constraints is None:
                vocab = self.model.get_output_embeddings().weight.shape[0]
                self._constraints = ConstraintFactory(self.inputs.tokenizer, vocab, self.end_ids)
            return self._constraints

    def _place(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Tensors to the model's device; pixels to the vision tower's real dtype."""
        placed = {}
        for key, value in batch.items():
            if hasattr(value, "to"):
                value = value.to(self.model.device)
                if key == self.inputs.pixel_key:
                    value = value.to(self.pixel_dtype)
            placed[key] = value
        return placed

    def turns(self, request: InferenceRequest, schema: dict[str, Any] | None) -> list[Turn]:
        """The conversation to prompt with; control-token strings in user text are removed
        so a question cannot open or close chat turns itself."""
        turns = conversation(request.history, self.prompts.instruction(request, schema))
        return [Turn(turn.role, strip_tokens(turn.text, self.hidden_tokens)) for turn in turns]

    def prepare(self, request: InferenceRequest) -> Prepared:
        """Everything before generation, on the caller's thread: image, prompt, constraint.

        Tokenizer calls are serialised: a fast tokenizer shared by threads can fail
        with "Already borrowed" when two threads use it at once.
        """
        image = prepare_image(request.image, self.image_max_side)
        # `attributes` answers match a schema (the request's or the product default), other tasks only when given one.
        constrained = request.task == "attributes" or "schema" in request.options
        schema = request_schema(request.options) if constrained else None
        with self._tokenizer_lock:
            turns = self.turns(request, schema)
            inputs = self.inputs.build(image, turns)
        if schema is None:
            return Prepared(inputs, None, None, None)
        constraints = self.constraints()
        smallest = constraints.minimal_cost(schema)
        if request.generation.max_new_tokens < smallest:
            raise InferenceError(
                "budget_too_small",
                f"max_new_tokens={request.generation.max_new_tokens} cannot hold the smallest answer this schema "
                f"allows ({smallest} tokens)",
            )
        return Prepared(inputs, schema, constraints.matcher(schema), constraints.guard(schema))

    def finish(self, prepared: Prepared, new_ids: list[int], finish_reason: str, prompt_tokens: int) -> InferenceResult:
        """Everything after generation: decode, clean, validate, redact."""
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(new_ids)}
        if prepared.schema is not None:
            text, data, counts = self._structured(prepared, new_ids)
        else:
            text, data = self._free_text(new_ids), None
            counts = Counter()
            if self.redact_pii:
                text, counts = redaction.redact_text(text)
        return InferenceResult(
            text=text, data=data, usage=usage, redactions=redaction.report(counts), finish_reason=finish_reason
        )

    def run(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        stop: StopSignal | None = None,
    ) -> InferenceResult:
        """Answer one request with one `generate()` call (families without a batching loop)."""
        prepared = self.prepare(request)
        batch = self._place(prepared.inputs)
        processors = [SchemaMask(prepared.matcher, self.constraints().vocab_size)] if prepared.matcher else []
        # JSON answers are re-serialised when finished, so their raw text is not streamed.
        deltas = TextDeltas(self.visible_text) if on_text is not None and prepared.schema is None else None
        sequence = generate(self.model, batch, request.generation, processors, progress, deltas, on_text, stop)
        prompt_tokens = batch["input_ids"].shape[1]
        new_ids = sequence[0, prompt_tokens:].tolist()
        return self.finish(prepared, new_ids, self.finish_reason(new_ids, request.generation), prompt_tokens)

    def finish_reason(self, new_ids: list[int], params: GenerationParams) -> str:
        """`stop` when the model ended its answer, `length` when the budget ran out first."""
        ended = bool(new_ids) and new_ids[-1] in self.end_ids
        return "stop" if ended or len(new_ids) < params.max_new_tokens else "length"

    def visible_text(self, new_ids: list[int]) -> str:
        """The answer so far as a user would see it (redacted like the result), for streaming."""
        text = self._free_text(new_ids)
        return redaction.redact_text(text)[0] if self.redact_pii else text

    def _free_text(self, new_ids: list[int]) -> str:
        with self._tokenizer_lock:
            raw = self.inputs.tokenizer.decode(new_ids, skip_special_tokens=False)
        return clean_output(strip_think(raw) if self.strips_reasoning else raw, self.hidden_tokens)

    def _structured(self, prepared: Prepared, new_ids: list[int]) -> tuple[str, dict[str, Any], Counter[str]]:
        """Parse, validate and redact a constrained answer; a cut-off object is an error."""
        schema = prepared.schema
        assert schema is not None and prepared.matcher is not None
        if not prepared.matcher.is_accepting():
            raise InferenceError(
                "output_truncated",
                f"the JSON object was not finished within max_new_tokens={len(new_ids)}; "
                "retry with a larger max_new_tokens",
            )
        with self._tokenizer_lock:
            raw = self.inputs.tokenizer.decode(new_ids, skip_special_tokens=True)
        try:
            data = json.loads(raw)
            validate_output(data, schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            raise InferenceError("invalid_output", f"model output does not match the schema: {exc}") from exc
        counts: Counter[str] = Counter()
        if self.redact_pii:
            data, counts = redaction.redact_data(data, schema)
            try:
                validate_output(data, schema)
            except jsonschema.ValidationError as exc:
                raise InferenceError(
                    "invalid_output", f"redacted output no longer matches the schema: {exc.message}"
                ) from exc
        return json.dumps(data, ensure_ascii=False), data, counts
