"""What a model family row holds, and the input-builder protocol every family implements.

A family is everything about a kind of checkpoint that the rest of the engine must not
know: how to recognise it from `config.json`, which transformers class loads it, how a
prompt and an image become `generate()` inputs, how the batching engine runs it (if it can),
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
    auto_class: AutoClass
    """The transformers auto class that loads its weights."""
    inputs: Callable[[str, Any, Settings], InputBuilder]
    """(checkpoint source, loaded config, settings) → the family's input builder."""
    needs_remote_code: bool = False
    """Refused unless `trust_remote_code` is set."""
    batching: BatchSupport | None = None
    """Its prefill and decode step for the batching engine (families without one use one `generate()` per job)."""
    strips_reasoning: bool = False
    """Whether answers may carry `<think>` blocks to remove (reasoning models answering with thinking off)."""
