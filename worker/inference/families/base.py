"""What a model family row holds, and the input-builder protocol every family implements.

A family is everything about a kind of checkpoint that the rest of the engine must not
know: how to recognise it from `config.json`, which transformers class loads it (an auto
class, or the family's own model class), which modules stay unquantized, how a prompt
and an image become `generate()` inputs, how the batching engine runs it (if it can),
and what its raw answers need removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from PIL import Image

from shared.settings import Settings
from worker.inference.batching.kernels import BatchSupport
from worker.inference.engine_contract import Turn
from worker.inference.model_parts import keep_unquantized

AutoClass = Literal["AutoModelForImageTextToText", "AutoModelForCausalLM"]


class InputBuilder(Protocol):
    """Turns an image and chat turns into `generate()` keyword arguments (CPU tensors)."""

    tokenizer: Any
    """Decodes answers and lists the special tokens users never see."""
    pixel_key: str
    """The input that carries the image, cast to the vision tower's dtype."""

    def build(self, image: Image.Image, turns: list[Turn]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ModelFamily:
    """One row of the family table (`worker.inference.families.registry`)."""

    name: str
    """The `VLMQ_MODEL_FAMILY` value that forces this row."""
    matches: Callable[[dict[str, Any]], bool]
    """Whether a checkpoint's `config.json` belongs to this family."""
    auto_class: AutoClass | None
    """The transformers auto class that loads its weights (None where `model_class` does)."""
    inputs: Callable[[str, Any, Settings], InputBuilder]
    """(checkpoint source, loaded config, settings) → the family's input builder."""
    model_class: Callable[[], Any] | None = None
    """Imports and returns the family's own `PreTrainedModel` class (native implementations); its
    `config_class` reads `config.json`, so no remote code and no auto mapping is involved."""
    unquantized: Callable[[Any], list[str]] = keep_unquantized
    """(model on the meta device) → the module paths bitsandbytes must leave in 16 bit."""
    batching: BatchSupport | None = None
    """Its prefill and decode step for the batching engine (families without one use one `generate()` per job)."""
    strips_reasoning: bool = False
    """Whether answers may carry `<think>` blocks to remove (reasoning models answering with thinking off)."""

    def __post_init__(self) -> None:
        if (self.auto_class is None) == (self.model_class is None):
            raise ValueError(f"family {self.name!r} needs exactly one of auto_class and model_class")
