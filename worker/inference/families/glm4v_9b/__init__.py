"""The original GLM-4V-9B (`THUDM/glm-4v-9b`), run by the project's own implementation.

Its remote code was written for transformers ~4.44 and cannot run on the version
pinned here, so the model (`model.py`: ChatGLM text stack, `vision.py`: EVA2-CLIP
tower), the tokenizer (`tokenizer.py`, from the tiktoken `tokenizer.model`) and the
prompt and pixels (`inputs.py`) are written against the checkpoint's own files and
weight names; `auto_map` in its `config.json` is ignored and no remote code runs.
Checked against ground truth made by the original code on a tiny random checkpoint
(`../shared/reference/glm4v-9b/`, `tests/inference/test_glm4v_9b_golden.py`).

It runs in the batching loop (`batch.py`: packed prefill and a decode step over the
engine's KV slots). This module is the family row and imports no torch: the model
package is imported by the loader in the worker process only.
"""

from __future__ import annotations

from typing import Any

from shared.settings import Settings
from worker.inference.families.base import InputBuilder, ModelFamily
from worker.inference.families.glm4v_9b.batch import BATCH_SUPPORT
from worker.inference.model_parts import head_module_names


def matches(config: dict[str, Any]) -> bool:
    """GLM-4V-9B calls itself `chatglm`; the vision config tells it from the text-only ChatGLM models."""
    return config.get("model_type") == "chatglm" and "vision_config" in config


def model_class() -> type:
    from worker.inference.families.glm4v_9b.model import Glm4v9bForConditionalGeneration

    return Glm4v9bForConditionalGeneration


def inputs(source: str, config: Any, settings: Settings) -> InputBuilder:
    from worker.inference.families.glm4v_9b.inputs import Glm4v9bInputs
    from worker.inference.families.glm4v_9b.tokenizer import load_tokenizer

    return Glm4v9bInputs(load_tokenizer(source), config.vision_config["image_size"])


def unquantized(model: Any) -> list[str]:
    """Only the output head stays 16-bit: the EVA2-CLIP tower is a third of the weights, so its Linears
    are quantized too (its convolutions and norms never are), as the ≤ 10 GiB nf4 footprint needs."""
    return head_module_names(model)


FAMILY = ModelFamily(
    name="glm4v_9b",
    matches=matches,
    auto_class=None,
    inputs=inputs,
    model_class=model_class,
    unquantized=unquantized,
    batching=BATCH_SUPPORT,
)
