"""The engine a GPU worker holds: one loaded model answering one request at a time.

`run()` is the whole path of a job: normalise the image, render the instruction,
build the prompt (image before text), generate (schema-constrained for
`attributes`), clean and redact the answer.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Protocol

import jsonschema
from PIL import Image

from worker.inference import redaction
from worker.inference.constrained import ConstraintFactory, SchemaMask, request_schema
from worker.inference.conversation import conversation
from worker.inference.generation import generate
from worker.inference.images import prepare_image
from worker.inference.modules import vision_dtype
from worker.inference.output_text import clean_output, strip_tokens
from worker.inference.prompts import PromptBook
from worker.inference.types import (
    InferenceError,
    InferenceRequest,
    InferenceResult,
    ProgressCallback,
    Turn,
)


class InputBuilder(Protocol):
    """Turns an image and chat turns into `generate()` keyword arguments."""

    tokenizer: Any
    pixel_key: str

    def build(self, image: Image.Image, turns: list[Turn]) -> dict[str, Any]: ...


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
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.prompts = prompts
        self.model_name = model_name
        self.is_placeholder = is_placeholder
        self.image_max_side = image_max_side
        self.redact_pii = redact_pii
        self.pixel_dtype = vision_dtype(model)
        tokenizer = inputs.tokenizer
        self.hidden_tokens = {
            *tokenizer.all_special_tokens,
            *(t.content for t in tokenizer.added_tokens_decoder.values()),
        }
        self._constraints: ConstraintFactory | None = None

    def constraints(self) -> ConstraintFactory:
        """llguidance's tokenizer view, built on the first `attributes` job (~1-2 s)."""
        if self._constraints is None:
            end_ids = self.model.generation_config.eos_token_id
            end_ids = [end_ids] if isinstance(end_ids, int) else list(end_ids or [])
            vocab = self.model.get_output_embeddings().weight.shape[0]
            self._constraints = ConstraintFactory(self.inputs.tokenizer, vocab, end_ids)
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

    def run(self, request: InferenceRequest, progress: ProgressCallback | None = None) -> InferenceResult:
        """Answer one request; job-caused failures raise `InferenceError`."""
        image = prepare_image(request.image, self.image_max_side)
        schema = request_schema(request.options) if request.task == "attributes" else None
        turns = self.turns(request, schema)
        batch = self._place(self.inputs.build(image, turns))
        mask = self.constraints().mask(schema) if schema is not None else None
        sequence = generate(self.model, batch, request.generation, [mask] if mask else [], progress)
        prompt_tokens = batch["input_ids"].shape[1]
        new_ids = sequence[0, prompt_tokens:].tolist()
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(new_ids)}
        if mask is not None and schema is not None:
            text, data, counts = self._structured(sequence, new_ids, mask, schema)
        else:
            text, data = self._free_text(new_ids), None
            counts = Counter()
            if self.redact_pii:
                text, counts = redaction.redact_text(text)
        return InferenceResult(text=text, data=data, usage=usage, redactions=redaction.report(counts))

    def _free_text(self, new_ids: list[int]) -> str:
        raw = self.inputs.tokenizer.decode(new_ids, skip_special_tokens=False)
        return clean_output(raw, self.hidden_tokens)

    def _structured(
        self, sequence: Any, new_ids: list[int], mask: SchemaMask, schema: dict[str, Any]
    ) -> tuple[str, dict[str, Any], Counter[str]]:
        """Parse, validate and redact a constrained answer; a cut-off object is an error."""
        if not mask.is_complete(sequence):
            raise InferenceError(
                "output_truncated",
                f"the JSON object was not finished within max_new_tokens={len(new_ids)}; "
                "retry with a larger max_new_tokens",
            )
        raw = self.inputs.tokenizer.decode(new_ids, skip_special_tokens=True)
        try:
            data = json.loads(raw)
            jsonschema.validate(data, schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            raise InferenceError("invalid_output", f"model output does not match the schema: {exc}") from exc
        counts: Counter[str] = Counter()
        if self.redact_pii:
            data, counts = redaction.redact_data(data, schema)
            try:
                jsonschema.validate(data, schema)
            except jsonschema.ValidationError as exc:
                raise InferenceError(
                    "invalid_output", f"redacted output no longer matches the schema: {exc.message}"
                ) from exc
        return json.dumps(data, ensure_ascii=False), data, counts
