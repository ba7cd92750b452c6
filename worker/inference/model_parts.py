"""Finding a model's vision tower and output head by structure, not by hard-coded names.

Module paths differ between families and transformers versions (`model.visual`,
`visual`, `transformer.vision`, `lm_head`, `transformer.output_layer`), and
bitsandbytes' `llm_int8_skip_modules` must name them exactly, so both the skip
list and the pixel dtype are derived from the instantiated module tree.
"""

from __future__ import annotations

from typing import Any

VISION_NAMES = frozenset({"visual", "vision", "vision_tower", "vision_model"})
HEAD_NAMES = frozenset({"lm_head", "output_layer"})


def vision_module_name(model: Any) -> str:
    """Dotted path of the outermost vision tower."""
    for name, _ in model.named_modules():
        if name.rsplit(".", 1)[-1] in VISION_NAMES:
            return name
    raise ValueError(f"{type(model).__name__} has no recognisable vision tower")


def head_module_names(model: Any) -> list[str]:
    """Dotted paths of the output projection(s) to the vocabulary."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        name
        for name, module in model.named_modules()
        if name and (module is output or name.rsplit(".", 1)[-1] in HEAD_NAMES)
    ]


def keep_unquantized(model: Any) -> list[str]:
    """The default bitsandbytes skip list: vision tower and output head stay in 16 bit."""
    return [vision_module_name(model), *head_module_names(model)]


def vision_dtype(model: Any) -> Any:
    """The dtype the vision tower's weights actually have after loading (and quantizing).

    Quantized weights are stored as integers: the first floating-point weight is the
    dtype the tower computes in.
    """
    tower = model.get_submodule(vision_module_name(model))
    return next(p.dtype for p in tower.parameters() if p.dtype.is_floating_point)
