"""GLM-4.1V / GLM-4.6V (`Glm4vForConditionalGeneration`): the production family.

Prompted through the checkpoint's own chat template with thinking switched off (the
template's `enable_thinking` flag); a `<think>` block may still appear and is removed
from answers. Runs in the batching loop (`glm4v_batch`).
"""

from __future__ import annotations

from typing import Any

from shared.settings import Settings
from worker.inference.families.base import InputBuilder, ModelFamily
from worker.inference.families.glm4v_batch import BATCH_SUPPORT
from worker.inference.families.processor_inputs import ProcessorInputs

MODEL_TYPES = frozenset({"glm4v", "glm46v"})
ARCHITECTURE_PREFIXES = ("Glm4v", "Glm46V")


def matches(config: dict[str, Any]) -> bool:
    architectures = config.get("architectures") or []
    return config.get("model_type", "") in MODEL_TYPES or any(
        a.startswith(ARCHITECTURE_PREFIXES) for a in architectures
    )


def inputs(source: str, config: Any, settings: Settings) -> InputBuilder:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(source, trust_remote_code=settings.trust_remote_code)
    return ProcessorInputs(processor, settings.image_max_side, {"enable_thinking": False})


FAMILY = ModelFamily(
    name="glm4v",
    matches=matches,
    auto_class="AutoModelForImageTextToText",
    inputs=inputs,
    batching=BATCH_SUPPORT,
    strips_reasoning=True,
)
