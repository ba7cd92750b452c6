"""Processor-based prompt building for models shipped with an HF processor.

The checkpoint's own chat template decides the exact token layout (GLM-4.6V,
Qwen2-VL, ...); a family passes its own template switches (GLM's
`enable_thinking=False`), so none is sent to a template that does not know it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PIL import Image

from worker.inference.engine_contract import InferenceError, Turn
from worker.inference.families.base import InputBuilder
from worker.inference.image_normalise import pixel_budget


def chat_messages(turns: list[Turn]) -> list[dict[str, Any]]:
    """HF chat messages with one image placeholder at the start of the first user turn."""
    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}]
        if index == 0:
            content.insert(0, {"type": "image"})
        messages.append({"role": turn.role, "content": content})
    return messages


class ProcessorInputs(InputBuilder):
    """Builds `generate()` inputs with an `AutoProcessor`."""

    pixel_key = "pixel_values"

    def __init__(self, processor: Any, max_side: int, template_switches: Mapping[str, Any] | None = None) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.size = pixel_budget(max_side)
        self.template_switches = dict(template_switches or {})

    def prompt_text(self, turns: list[Turn]) -> str:
        """The templated prompt, image placeholder not yet expanded."""
        return self.processor.apply_chat_template(
            chat_messages(turns), tokenize=False, add_generation_prompt=True, **self.template_switches
        )

    def build(self, image: Image.Image, turns: list[Turn]) -> dict[str, Any]:
        """Token ids, attention mask and pixel tensors for one request."""
        text = self.prompt_text(turns)
        try:
            batch = self.processor(text=[text], images=[image], size=self.size, return_tensors="pt")
        except ValueError as exc:  # e.g. an aspect ratio the vision tower cannot tile
            raise InferenceError("image_error", f"image cannot be processed: {exc}") from exc
        return dict(batch)
