"""What a model family hands the batching engine: its KV layout, its prefill and its decode step.

The engine (slots, captured graphs, sampling, scheduling) knows nothing about a model's
layers; a family row (`worker.inference.families`) that can batch carries a `BatchSupport`,
and the engine builds its kernels over the engine's own KV slots. A second family batches
by writing these two functions, without editing the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from worker.inference.batching.fused_ops import FusedOps
from worker.inference.batching.kv_slots import KVSlots

CACHE_TOKENS = "cache_tokens"
"""The key of a staged request holding the cache positions its prompt will fill, where that is not its
`input_ids` length (images that expand in the model): what admission and the sequence limit count."""


@dataclass(frozen=True)
class KVLayout:
    """The shape of one token's cached keys and values."""

    layers: int
    kv_heads: int
    head_dim: int


@dataclass
class Prefilled:
    """A prompt now in its slot's cache: the logits for its first new token and where decoding resumes."""

    logits: Any
    next_position: int
    """The rotary position of the first new token."""
    prompt_ids: Any
    """The prompt's token ids (1-D, on the device): what repetition penalty counts as seen."""
    cached: int
    """Cache positions the prompt fills: its token count, or more where images expand in the model
    (GLM-4V-9B's tower puts 1,600 features where the prompt holds one placeholder)."""


class BatchKernels(Protocol):
    """A family's batched prefill and decode step over the engine's `KVSlots`."""

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """On the caller's thread: everything prefill can prepare without the GPU (positions, dtype casts,
        pinned memory), so the loop's thread only launches work; `CACHE_TOKENS` where the cache holds more
        than the `input_ids`."""
        ...

    def prefill(self, inputs: list[dict[str, Any]], slots: list[int]) -> list[Prefilled]:
        """Run the staged prompts together, writing each one's K/V into its slot."""
        ...

    def decode(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        """Logits `(batch, vocab)` for one new token in each of the first `batch` slots.

        `tokens`, `positions` and `lengths` are 1-D device tensors over all slots (token fed,
        its rotary position, tokens already cached: where its K/V is written); attention reads
        the first `window` cache positions. Captured as CUDA graphs: no host syncs, fixed shapes.
        """
        ...


@dataclass(frozen=True)
class PrefillAndDecode:
    """`BatchKernels` from a family's two halves: a prefill (with its `stage`) and a decode step."""

    prefill_step: Any
    decode_step: Callable[[Any, Any, Any, int, int], Any]

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self.prefill_step.stage(inputs)

    def prefill(self, inputs: list[dict[str, Any]], slots: list[int]) -> list[Prefilled]:
        return self.prefill_step(inputs, slots)

    def decode(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        return self.decode_step(tokens, positions, lengths, batch, window)


@dataclass(frozen=True)
class KernelContext:
    """What the engine decides for every family: the vision dtype and how elementwise work runs."""

    pixel_dtype: Any
    ops: FusedOps


@dataclass(frozen=True)
class BatchSupport:
    """A family row's way into the batching engine."""

    kv_layout: Callable[[Any], KVLayout]
    """model → the shape of its cached K/V (sizes the slots before any kernel exists)."""
    kernels: Callable[[Any, KVSlots, KernelContext], BatchKernels]
    """(model, slots, context) → the family's kernels over those slots."""


def upload(tensor: Any, device: Any) -> Any:
    """One staged (pinned, on CUDA) tensor to the device without waiting. Join uploads on the device,
    not before on the host: a host-side concatenation makes a pageable copy and the upload synchronous."""
    return tensor.to(device, non_blocking=True)


def attend_packed(
    q: Any, k: Any, v: Any, segments: list[tuple[int, int, int]], keys: Any, values: Any, scale: float | None = None
) -> Any:
    """Causal attention inside each `(start, length, slot)` segment of a packed prefill `(1, heads, tokens, dim)`,
    each segment's K/V written into its slot of one layer's `keys`/`values` on the way; grouped K/V as they are."""
    import torch
    import torch.nn.functional as F

    out = torch.empty_like(q)
    for start, length, slot in segments:
        end = start + length
        keys[slot, :, :length] = k[0, :, start:end]
        values[slot, :, :length] = v[0, :, start:end]
        out[:, :, start:end] = F.scaled_dot_product_attention(
            q[:, :, start:end], k[:, :, start:end], v[:, :, start:end], is_causal=True, scale=scale, enable_gqa=True
        )
    return out
