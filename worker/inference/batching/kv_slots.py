"""A static KV cache with one row ("slot") per running sequence.

Static shapes are what lets the decode step be captured as a CUDA graph: tensors
never move or resize, a sequence is placed in a free slot when it joins and the
slot is handed to the next one when it leaves. Free slots are handed out lowest
first, so the running batch stays packed at the front and the step can run on the
smallest captured batch size that covers it.
"""

from __future__ import annotations

import heapq
from typing import Any


class KVSlots:
    """Per-layer key and value buffers shaped `(slots, kv_heads, capacity, head_dim)`."""

    def __init__(
        self, layers: int, slots: int, kv_heads: int, head_dim: int, capacity: int, dtype: Any, device: Any
    ) -> None:
        import torch

        shape = (slots, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.slots = slots
        self.capacity = capacity
        self._free = list(range(slots))

    @property
    def free_count(self) -> int:
        return len(self._free)

    def acquire(self) -> int:
        """The lowest free slot; the caller checked `free_count`."""
        return heapq.heappop(self._free)

    def release(self, slot: int) -> None:
        heapq.heappush(self._free, slot)

    def load(self, slot: int, layer_kv: list[tuple[Any, Any]]) -> None:
        """Copy one sequence's prompt K/V (each `(kv_heads, length, head_dim)`) into `slot`."""
        for keys, values, (k, v) in zip(self.keys, self.values, layer_kv, strict=True):
            length = k.shape[1]
            keys[slot, :, :length].copy_(k)
            values[slot, :, :length].copy_(v)

    @staticmethod
    def bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
        """Memory one cached token costs across all layers (keys and values)."""
        return 2 * layers * kv_heads * head_dim * dtype_bytes
