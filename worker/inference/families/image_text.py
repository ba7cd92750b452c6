"""Any other `AutoModelForImageTextToText` checkpoint shipped with an HF processor (Qwen2-VL, ...).

The fallback row: its chat template decides the prompt layout, nothing model-specific is
added, and it answers one job at a time with `generate()`.
"""

from __future__ import annotations

from typing import Any

from shared.settings import Settings
from worker.inference.families.base import InputBuilder, ModelFamily
from worker.inference.families.processor_inputs import ProcessorInputs


def matches(config: dict[str, Any]) -> bool:
    """Every checkpoint the rows before it did not claim."""
    return True


def inputs(source: str, config: Any, settings: Settings) -> InputBuilder:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(source, trust_remote_code=settings.trust_remote_code)
    return ProcessorInputs(processor, settings.image_max_side)


FAMILY = ModelFamily(name="image_text", matches=matches, auto_class="AutoModelForImageTextToText", inputs=inputs)
