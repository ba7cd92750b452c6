"""The model-family table: one row per family, each defined in its own module.

A new family is a new module (or package) with a `FAMILY` row (see `families/base.py` for what a row
holds), added here before the `image_text` fallback and to `ModelFamily` in
`shared/settings.py` (the names `VLMQ_MODEL_FAMILY` accepts).
"""

from __future__ import annotations

from typing import Any

from worker.inference.families import glm4v, glm4v_9b, image_text
from worker.inference.families.base import ModelFamily

FAMILIES: tuple[ModelFamily, ...] = (glm4v_9b.FAMILY, glm4v.FAMILY, image_text.FAMILY)
"""Tried in order on a checkpoint's config; the last row matches anything. GLM-4V-9B (`model_type` chatglm)
comes first: a checkpoint saved by its native class names an architecture starting with `Glm4v`."""


def family_for(config: dict[str, Any], requested: str = "auto") -> ModelFamily:
    """The row named by `requested`, or on `auto` the first row whose `matches` accepts `config.json`."""
    if requested != "auto":
        return next(family for family in FAMILIES if family.name == requested)
    return next(family for family in FAMILIES if family.matches(config))
