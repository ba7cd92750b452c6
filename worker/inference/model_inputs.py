"""Processor-based prompt building for models shipped with an HF processor.

The checkpoint's own chat template decides the exact token layout (GLM-4.6V,
Qwen2-VL, ...); thinking is switched off through the template's
`enable_thinking` flag, as GLM-4.6V's template expects.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from worker.inference.conversation import chat_messages
from worker.inference.engine_contract import InferenceError, Turn
from worker.inference.image_normalise import pixel_budget


class ProcessorInputs:
    """Builds `generate()` inputs with an `AutoProcessor`."""

    pixel_key = "pixel_values"

    def __init__(self, processor: Any, max_side: int) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.size = pixel_budget(max_side)

    def prompt_text(self, turns: list[Turn]) -> str:
        """The templated prompt, image placeholder not yet expanded."""
        return self.processor.apply_chat_template(
            chat_messages(turns), tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def build(self, image: Image.Image, turns: list[Turn]) -> dict[str, Any]:
        """Token ids, attention mask and pixel tensors for one request."""
        text = self.prompt_text(turns)
        try:
            batch = self.processor(text=[text], images=[image], size=self.size, return_tensors="pt")
        except ValueError as exc:  # e.g. an aspect ratio the vision tower cannot tile
            raise InferenceError("image_error", f"image cannot be processed: {exc}") from exc
        return dict(batch)
